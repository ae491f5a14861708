"""The node's swarm identity: its key, certificate, the root CA it trusts, its
node ID and the managers it knows, kept under <data-root>/swarm (directory
0700, key 0600) so that a restart rejoins without a token. No cryptography
here (certs.py has it): this module is loaded by every daemon.

The key, the certificate and the root CA are replaced together (a renewal
changes the key and the certificate, a root rotation the root): each set is
written, synced, to a new `certificates.<n>` directory, then the
`certificates` symlink is swapped to it with one rename. A crash at any point
leaves the previous set or the new one, never a key with another key's
certificate."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..util.fsatomic import write_atomic

CERTS = "certificates"
TLS_FILES = ("key.pem", "cert.pem", "ca.pem")


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


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class IdentityStore:
    """<data-root>/swarm: certificates -> certificates.<n>/{key,cert,ca}.pem, and
    state.json (node ID, managers, availability, addresses)."""

    def __init__(self, data_root: str) -> None:
        self.dir = Path(data_root) / "swarm"

    def exists(self) -> bool:
        return (self.dir / "state.json").exists()

    def save(self, ident: Identity) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self._save_tls(ident.key, ident.cert, ident.root_ca)
        state = {"NodeID": ident.node_id, "Managers": ident.managers,
                 "Availability": ident.availability, "AdvertiseAddr": ident.advertise_addr,
                 "ListenAddr": ident.listen_addr, "DataPathAddr": ident.data_path_addr}
        write_atomic(str(self.dir / "state.json"), json.dumps(state).encode(), mode=0o600)

    def _save_tls(self, key: bytes, cert: bytes, root_ca: bytes) -> None:
        contents = (key, cert, root_ca)
        if self._read_tls() == contents:
            return
        generations = [int(p.name.rpartition(".")[2]) for p in self.dir.glob(CERTS + ".*")
                       if p.name.rpartition(".")[2].isdigit()]
        name = f"{CERTS}.{max(generations, default=0) + 1}"
        new = self.dir / name
        shutil.rmtree(new, ignore_errors=True)
        new.mkdir(mode=0o700)
        for fname, data in zip(TLS_FILES, contents):
            write_atomic(str(new / fname), data, mode=0o600 if fname == "key.pem" else 0o644)
        _fsync_dir(new)
        link = self.dir / f".{CERTS}.tmp"
        link.unlink(missing_ok=True)
        os.symlink(name, link)
        os.replace(link, self.dir / CERTS)
        _fsync_dir(self.dir)
        self._prune(keep=name)

    def _prune(self, keep: str) -> None:
        """Older sets, and the flat files of the first layout."""
        for p in self.dir.glob(CERTS + ".*"):
            if p.name != keep:
                shutil.rmtree(p, ignore_errors=True)
        for fname in TLS_FILES:
            (self.dir / fname).unlink(missing_ok=True)

    def _read_tls(self) -> tuple[bytes, bytes, bytes] | None:
        """The current set; the flat key.pem/cert.pem/ca.pem of identities stored
        before certificates/ existed are read too."""
        for base in (self.dir / CERTS, self.dir):
            try:
                key, cert, ca = ((base / f).read_bytes() for f in TLS_FILES)
                return key, cert, ca
            except FileNotFoundError:
                continue
        return None

    def load(self) -> Identity:
        state = json.loads((self.dir / "state.json").read_bytes())
        tls = self._read_tls()
        if tls is None:
            raise FileNotFoundError(f"no certificates under {self.dir}")
        key, cert, ca = tls
        return Identity(state["NodeID"], key, cert, ca, list(state["Managers"]),
                        state.get("Availability", "active"), state.get("AdvertiseAddr", ""),
                        state.get("ListenAddr", ""), state.get("DataPathAddr", ""))

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
