"""Managed network + IPAM and authorization plugins for the tests: the legacy test
plugins (netplugin_helpers.NetworkPlugin, authz_helpers.AuthzPlugin) packaged as
managed plugins. Their modules are copied into a busybox rootfs that bind-mounts the
host's /usr (for python3 and iproute2, managed_plugin_helpers' way); a small main script
serves the protocol on the socket the engine gives and appends every call to
/calls.log in the plugin's rootfs (`[method, body]` JSON lines), which the tests read
on the host. The network plugin asks for the host's network namespace and
CAP_NET_ADMIN, as real network plugins do: its bridges and veths are the host's."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from managed_plugin_helpers import write_plugin_dir

HERE = Path(__file__).resolve().parent

NET_MAIN = r'''
import json, os, sys, threading
sys.path.insert(0, "/")
from netplugin_helpers import NetworkPlugin

class Logged(NetworkPlugin):
    def handle(self, method, body):
        with open("/calls.log", "a") as f:
            f.write(json.dumps([method, body]) + "\n")
        return super().handle(method, body)

Logged("/state", "/run/docker/plugins/tnp.sock", os.environ["TAG"],
       os.environ["POOL"]).start()
threading.Event().wait()
'''

AUTHZ_MAIN = r'''
import json, os, sys, threading
sys.path.insert(0, "/")
from authz_helpers import AuthzPlugin, Rule

class Logged(AuthzPlugin):
    def decide(self, phase, req):
        with open("/calls.log", "a") as f:
            f.write(json.dumps([phase, req]) + "\n")
        return super().decide(phase, req)

p = Logged("/state", "/run/docker/plugins/tap.sock")
p.deny_req = [Rule("", os.environ["DENY"], "no " + os.environ["DENY"] + " here")]
p.start()
threading.Event().wait()
'''


def _config(socket: str, types: list[str], env: dict[str, str], **extra: Any) -> dict:
    cfg: dict[str, Any] = {
        "Description": "pydockerd test plugin",
        "Documentation": "https://example.invalid/",
        "Entrypoint": ["/usr/bin/python3", "/main.py"],
        "Interface": {"Types": types, "Socket": socket},
        "Network": {"Type": "none"},
        "Mounts": [{"Name": "usr", "Description": "the host's Python and iproute2",
                    "Source": "/usr", "Destination": "/usr", "Type": "bind",
                    "Options": ["rbind", "ro"]}],
        "Env": [{"Name": k, "Description": "", "Settable": ["value"], "Value": v}
                for k, v in env.items()],
    }
    cfg.update(extra)
    return cfg


def _write(d: Path, config: dict, main: str, modules: tuple[str, ...]) -> Path:
    write_plugin_dir(d, config)
    rootfs = d / "rootfs"
    for m in modules:
        shutil.copy(HERE / m, rootfs / m)
    (rootfs / "main.py").write_text(main)
    (rootfs / "state").mkdir(exist_ok=True)
    return d


def write_net_plugin(d: Path, tag: str, pool: str) -> Path:
    """`tnp`: NetworkDriver + IpamDriver; its devices are named after `tag`, its IPAM's
    default pool is `pool`."""
    cfg = _config("tnp.sock", ["docker.networkdriver/1.0", "docker.ipamdriver/1.0"],
                  {"TAG": tag, "POOL": pool}, Network={"Type": "host"},
                  Linux={"Capabilities": ["CAP_NET_ADMIN"]})
    _write(d, cfg, NET_MAIN, ("plugin_helpers.py", "netplugin_helpers.py"))
    # the host's iproute2 (busybox's ip knows no `veth peer name`); /usr/sbin/ip is a
    # link to /bin/ip on Debian, so /bin/ip must be it too
    ip = d / "rootfs" / "bin" / "ip"
    if os.path.lexists(ip):
        ip.unlink()
    ip.symlink_to("/usr/bin/ip")
    return d


def write_authz_plugin(d: Path, deny: str) -> Path:
    """`tap`: authz; denies every request whose URI matches the regular expression
    `deny` (settable as DENY)."""
    cfg = _config("tap.sock", ["docker.authz/1.0"], {"DENY": deny})
    return _write(d, cfg, AUTHZ_MAIN, ("plugin_helpers.py", "authz_helpers.py"))


def calls(rootfs: Path) -> list[tuple[str, Any]]:
    """What the plugin was asked, in order."""
    try:
        text = (rootfs / "calls.log").read_text()
    except FileNotFoundError:
        return []
    return [tuple(json.loads(line)) for line in text.splitlines() if line.strip()]
