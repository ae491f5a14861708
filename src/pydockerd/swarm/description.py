"""The NodeDescription a worker sends with each session: what the manager's
scheduler matches constraints, resources and plugins against."""
from __future__ import annotations

import os
import platform
import socket

from .. import __version__
from ..logdrivers.options import SUPPORTED as LOG_DRIVERS
from ..util.procfs import read_text
from .certs import issuer_info
from .identity import Identity
from .proto import swarmkit_pb2 as pb

# never `overlay`: without it the manager keeps overlay and ingress tasks away
NETWORK_DRIVERS = ("bridge", "host", "null")
VOLUME_DRIVERS = ("local",)


def _mem_total() -> int:
    for line in read_text("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def engine_labels(labels: list[str]) -> dict[str, str]:
    """The daemon's `key=value` labels as a map (a label without `=` has an empty value)."""
    out: dict[str, str] = {}
    for label in labels:
        key, _, value = label.partition("=")
        out[key] = value
    return out


def describe(ident: Identity, labels: list[str]) -> pb.NodeDescription:
    plugins = ([pb.PluginDescription(type="Volume", name=n) for n in VOLUME_DRIVERS]
               + [pb.PluginDescription(type="Network", name=n) for n in NETWORK_DRIVERS]
               + [pb.PluginDescription(type="Log", name=n) for n in LOG_DRIVERS])
    subject, public_key = issuer_info(ident.cert, ident.root_ca)
    return pb.NodeDescription(
        hostname=socket.gethostname(),
        platform=pb.Platform(architecture=platform.machine(), os="linux"),
        resources=pb.Resources(nano_cpus=(os.cpu_count() or 1) * 10**9,
                               memory_bytes=_mem_total()),
        engine=pb.EngineDescription(engine_version=__version__,
                                    labels=engine_labels(labels), plugins=plugins),
        tls_info=pb.NodeTLSInfo(trust_root=ident.root_ca, cert_issuer_subject=subject,
                                cert_issuer_public_key=public_key))
