"""Running a managed plugin as a container (moby's plugin/v2 InitSpec and
manager_linux.go enable/disable): runc under conmon, as containers are run, but with
their own runc root (<exec-root>/plugins/runc), so container reconciliation never
touches them, and bundles under <exec-root>/plugins/<id>.

The spec: the rootfs under <data-root>/plugins/<id>/rootfs (writable), the config's
Entrypoint + the settings' Args, `PATH` + the settings' Env, WorkDir, Docker's default
capabilities plus Linux.Capabilities, the settings' Mounts and Devices
(AllowAllDevices: every device), the host's /etc/hosts and /etc/resolv.conf when a
network type is set, a new network namespace unless the type is `host`, the host's
pid/ipc namespaces for PidHost/IpcHost, no seccomp profile (as dockerd), and
<socket-dir>/<id> bind-mounted (rshared) at /run/docker/plugins, where the plugin
creates Interface.Socket. PropagatedMount: <data-root>/plugins/<id>/propagated-mount
is made a shared mount and bound rshared at that path, with an rshared root, so what
the plugin mounts there is seen by the host (and the containers using its volumes)."""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass
from typing import Any

from ...errors import DockerError, SystemError_
from ...runtime import conmon
from ...runtime.oci_spec import DEFAULT_PATH_ENV, build_spec
from ...runtime.pidwatch import pid_alive, wait_pid
from ...runtime.runc import Runc
from ...runtime.spec_input import DeviceSpec, MountSpec, SpecInput
from ...runtime.users import ExecUser
from ...util import cmd
from ...util.mounts import is_mountpoint
from .state import PluginRecord, PluginStore

log = logging.getLogger("pydockerd.plugins")
RUNTIME_DEST = "/run/docker/plugins"    # moby's defaultPluginRuntimeDestination
STOP_GRACE = 10.0                       # SIGTERM, then SIGKILL (dockerd's 10 s)
START_TIMEOUT = 30.0
SUN_PATH_MAX = 107                      # sockaddr_un.sun_path, less its NUL


@dataclass(frozen=True)
class RunPaths:
    exec_root: str          # <exec-root>/plugins
    socket_dir: str         # /run/docker/plugins (PYDOCKERD_PLUGIN_SOCKET_DIR)

    @property
    def runc_root(self) -> str:
        return os.path.join(self.exec_root, "runc")

    def bundle(self, pid: str) -> str:
        return os.path.join(self.exec_root, pid)

    def runtime_dir(self, pid: str) -> str:
        return os.path.join(self.socket_dir, pid)

    def socket(self, rec: PluginRecord) -> str:
        return os.path.join(self.runtime_dir(rec.id), rec.config["Interface"]["Socket"])


def plugin_spec(rec: PluginRecord, store: PluginStore, paths: RunPaths) -> dict[str, Any]:
    c, s = rec.config, rec.settings
    mounts: list[MountSpec] = []
    prop = c["PropagatedMount"]
    if prop:
        mounts.append(MountSpec(prop, store.propagated(rec.id), "bind",
                                ["rbind", "rw", "rshared"]))
    for m in s["Mounts"]:
        if m["Source"] is None:
            raise SystemError_(f"plugin {rec.name}: mount {m['Destination']}: mount "
                               "source is not specified")
        mounts.append(MountSpec(m["Destination"], m["Source"], m["Type"] or "bind",
                                list(m["Options"] or [])))
    mounts.append(MountSpec(RUNTIME_DEST, paths.runtime_dir(rec.id), "bind",
                            ["rbind", "rshared"]))
    ntype = c["Network"]["Type"]
    if ntype:
        for f in ("/etc/hosts", "/etc/resolv.conf"):
            mounts.append(MountSpec(f, f, "bind", ["rbind", "ro"]))
    devices = [DeviceSpec(d["Path"], d["Path"], "rwm") for d in s["Devices"] if d["Path"]]
    user = c.get("User") or {}
    inp = SpecInput(
        container_id=rec.id, rootfs=store.rootfs(rec.id),
        args=[*c["Entrypoint"], *s["Args"]], env=[f"PATH={DEFAULT_PATH_ENV}", *s["Env"]],
        cwd=c["WorkDir"] or "/", cap_add=list(c["Linux"]["Capabilities"] or []),
        security_opt=["seccomp=unconfined", "apparmor=unconfined"], mounts=mounts,
        netns_path=None if ntype == "host" else "",
        pid_mode="host" if c["PidHost"] else "", ipc_mode="host" if c["IpcHost"] else "",
        devices=devices, cgroups_path=f"/pydockerd/plugins/{rec.id}",
        exec_user=ExecUser(int(user.get("UID") or 0), int(user.get("GID") or 0)))
    spec = build_spec(inp)
    spec["hostname"] = ""
    if prop:
        spec["linux"]["rootfsPropagation"] = "rshared"
    if c["Linux"]["AllowAllDevices"]:
        spec["linux"]["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
    return spec


class PluginRunner:
    def __init__(self, store: PluginStore, paths: RunPaths, runc_binary: str) -> None:
        self.store = store
        self.paths = paths
        self.runc = Runc(runc_binary, paths.runc_root)
        self.conmon_pids: dict[str, int] = {}

    def _conmon_spec(self, rec: PluginRecord) -> conmon.ConmonSpec:
        bundle = self.paths.bundle(rec.id)
        return conmon.ConmonSpec(
            cid=rec.id, name=rec.name, bundle=bundle,
            persist_dir=os.path.join(bundle, "persist"),
            exit_dir=os.path.join(self.paths.exec_root, "exits"),
            log_path=os.path.join(bundle, "plugin.log"), tty=False, stdin=False,
            runc=self.runc.binary, runc_root=self.runc.root)

    def log_tail(self, rec: PluginRecord, n: int = 10) -> str:
        try:
            with open(os.path.join(self.paths.bundle(rec.id), "plugin.log"), "rb") as f:
                lines = f.read()[-8192:].decode(errors="replace").splitlines()[-n:]
        except OSError:
            return ""
        # k8s-file records: "<time> <stream> <F|P> <text>"
        return "\n".join(line.split(" ", 3)[-1] for line in lines)

    async def _shared_propagated(self, rec: PluginRecord) -> None:
        path = self.store.propagated(rec.id)
        os.makedirs(path, mode=0o755, exist_ok=True)
        if not await asyncio.to_thread(is_mountpoint, path):
            await cmd.run(["mount", "--bind", path, path])
        await cmd.run(["mount", "--make-rshared", path])

    async def start(self, rec: PluginRecord, timeout: float) -> None:
        """Start the plugin and wait (up to `timeout` s) for its socket."""
        if len(self.paths.socket(rec).encode()) > SUN_PATH_MAX:
            raise SystemError_(f"plugin {rec.name}: socket path {self.paths.socket(rec)} is "
                               f"longer than a unix socket address allows ({SUN_PATH_MAX})")
        await self.runc.delete(rec.id)                 # a leftover of a crashed daemon
        for d in (self.paths.bundle(rec.id), self.paths.runtime_dir(rec.id)):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d, mode=0o700)
        if rec.config["PropagatedMount"]:
            await self._shared_propagated(rec)
        spec = plugin_spec(rec, self.store, self.paths)
        try:
            started = await conmon.create(self._conmon_spec(rec), spec)
            self.conmon_pids[rec.id] = started.conmon_pid
            await self.runc.start(rec.id)
            await self._wait_socket(rec, started.conmon_pid, timeout)
        except DockerError:
            await self.stop(rec)
            raise
        log.info("plugin %s (%s) started, socket %s", rec.name, rec.id[:12],
                 self.paths.socket(rec))

    async def _wait_socket(self, rec: PluginRecord, conmon_pid: int, timeout: float) -> None:
        sock = self.paths.socket(rec)
        deadline = time.monotonic() + (timeout if timeout > 0 else START_TIMEOUT)
        while not os.path.exists(sock):
            if not pid_alive(conmon_pid):
                tail = self.log_tail(rec)
                raise SystemError_(f"plugin {rec.name} exited before it created its socket "
                                   f"{rec.config['Interface']['Socket']}"
                                   + (f": {tail}" if tail else ""))
            if time.monotonic() > deadline:
                raise SystemError_(f"plugin {rec.name} did not create its socket "
                                   f"{rec.config['Interface']['Socket']} in time")
            await asyncio.sleep(0.05)

    def adopt(self, rec: PluginRecord) -> bool:
        """Take over a run a previous daemon left (live-restore): its conmon still
        monitors the plugin and the socket is there. False: nothing to adopt."""
        try:
            with open(os.path.join(self.paths.bundle(rec.id), "conmon.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return False
        if not conmon.is_monitor_of(pid, rec.id) or not os.path.exists(self.paths.socket(rec)):
            return False
        self.conmon_pids[rec.id] = pid
        log.info("plugin %s (%s) still running (conmon %d): adopted", rec.name, rec.id[:12],
                 pid)
        return True

    def running(self, rec: PluginRecord) -> bool:
        pid = self.conmon_pids.get(rec.id)
        return pid is not None and pid_alive(pid)

    async def wait(self, rec: PluginRecord) -> None:
        """Until the plugin's conmon exits."""
        pid = self.conmon_pids.get(rec.id)
        if pid is not None:
            await wait_pid(pid)

    async def stop(self, rec: PluginRecord) -> None:
        """SIGTERM, SIGKILL after the grace period, then every trace of the run."""
        pid = self.conmon_pids.pop(rec.id, None)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                await self.runc.kill(rec.id, sig, all_procs=sig == signal.SIGKILL)
            except DockerError:
                break                                  # not running (any more)
            if pid is None:
                break
            try:
                await asyncio.wait_for(wait_pid(pid), STOP_GRACE)
                break
            except asyncio.TimeoutError:
                log.warning("plugin %s did not stop on SIGTERM: killed", rec.name)
        if pid is not None and pid_alive(pid):
            try:
                await asyncio.wait_for(wait_pid(pid), STOP_GRACE)
            except asyncio.TimeoutError:
                log.error("plugin %s: conmon %d still running", rec.name, pid)
        await self.runc.delete(rec.id)
        prop = self.store.propagated(rec.id)
        if rec.config["PropagatedMount"] and await asyncio.to_thread(is_mountpoint, prop):
            await cmd.run(["umount", "-l", prop], check=False)
        shutil.rmtree(self.paths.runtime_dir(rec.id), ignore_errors=True)
        shutil.rmtree(self.paths.bundle(rec.id), ignore_errors=True)
