"""The node's swarm identity: its key, certificate, the root CA it trusts, its
node ID and the managers it knows, kept under <data-root>/swarm (directory
0700, key 0600) so that a restart rejoins without a token. No cryptography
here (certs.py has it): this module is loaded by every daemon."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..util.fsatomic import write_atomic


@dataclass
class Identity:
    node_id: str
    key: bytes                 # PEM
    cert: bytes                # PEM chain issued by the swarm CA
    root_ca: bytes             # PEM bundle
    managers: list[str] = field(default_factory=list)     # host:port
    availability: str = "active"
    advertise_addr: str = ""
    listen_addr: str = ""
    data_path_addr: str = ""


class IdentityStore:
    """<data-root>/swarm: key.pem, cert.pem, ca.pem and state.json."""

    def __init__(self, data_root: str) -> None:
        self.dir = Path(data_root) / "swarm"

    def exists(self) -> bool:
        return (self.dir / "state.json").exists()

    def save(self, ident: Identity) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        write_atomic(str(self.dir / "key.pem"), ident.key, mode=0o600)
        write_atomic(str(self.dir / "cert.pem"), ident.cert, mode=0o644)
        write_atomic(str(self.dir / "ca.pem"), ident.root_ca, mode=0o644)
        state = {"NodeID": ident.node_id, "Managers": ident.managers,
                 "Availability": ident.availability, "AdvertiseAddr": ident.advertise_addr,
                 "ListenAddr": ident.listen_addr, "DataPathAddr": ident.data_path_addr}
        write_atomic(str(self.dir / "state.json"), json.dumps(state).encode(), mode=0o600)

    def load(self) -> Identity:
        state = json.loads((self.dir / "state.json").read_bytes())
        return Identity(state["NodeID"], (self.dir / "key.pem").read_bytes(),
                        (self.dir / "cert.pem").read_bytes(),
                        (self.dir / "ca.pem").read_bytes(), list(state["Managers"]),
                        state.get("Availability", "active"), state.get("AdvertiseAddr", ""),
                        state.get("ListenAddr", ""), state.get("DataPathAddr", ""))

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
