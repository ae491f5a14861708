"""`docker exec` without a runc process: the daemon forks, joins the container's
cgroups and namespaces, and sets the process up the way `runc exec` does
(libcontainer's nsexec + setns_init: session keyring, stdio or a pty from the
container's devpts (runtime/devpts.py), rlimits, no_new_privs, seccomp, bounding set, user and
groups, working directory, capabilities, PATH lookup), then execs.

runc exec costs two Go start-ups, a copy of its binary and a seccomp compile
per exec (about 20 ms); this costs two forks. Where the container asks for
something this does not reproduce (a user namespace, AppArmor on a host that
enforces it, CAP_SYS_PTRACE in the container's bounding set, an Intel RDT group, a seccomp notify action, an unknown process
field, an architecture not listed below), `plan_exec` answers None and the
caller runs runc exec as before.

Forks: A (forked from the daemon, single-threaded from then on) joins the
cgroups and namespaces and forks B, which enters the container's pid namespace;
A reports B's pid and exits, so B re-parents to the daemon (a child subreaper)
as `runc exec --detach`'s process does. B reports a failure on a CLOEXEC pipe,
so the pipe's end without a message means the exec happened.
"""
from __future__ import annotations

import asyncio
import os
import platform
import resource
import socket
from typing import Any

from ..errors import DockerError
from ..util.fdstream import read_pipe
from .caps import KNOWN_CAPABILITIES
from .cgroupmounts import UNIFIED, host_cgroup_mounts, parse_proc_cgroup
from .execplan import ExecPlan, start_time
from .nschild import SYSCALLS
from .nsclient import SERVER as _SERVER
from .pidwatch import wait_pid
from .rlimits import RLIM_INFINITY, rlimit_constant
from .seccompbpf import compile_profile
from .users import resolve_user

# runc joins namespaces in this order (configs.NamespaceTypes), user first (unsupported)
_NS_ORDER = (("ipc", "ipc"), ("uts", "uts"), ("network", "net"), ("pid", "pid"),
             ("mount", "mnt"), ("cgroup", "cgroup"))
_KNOWN_NS = {t for t, _ in _NS_ORDER}
_PROCESS_KEYS = {"terminal", "user", "args", "env", "cwd", "capabilities", "rlimits",
                 "noNewPrivileges", "oomScoreAdj", "consoleSize", "apparmorProfile"}
_LINUX_UNSUPPORTED = ("intelRdt", "uidMappings", "gidMappings", "timeOffsets", "personality")
_CAP_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def plan_exec(cid: str, init_pid: int, spec: dict[str, Any],
              process: dict[str, Any]) -> ExecPlan | None:
    """What the exec needs, or None where runc must do it. Reads /proc and may compile
    the seccomp profile: call it in a worker thread."""
    if platform.machine() not in SYSCALLS or init_pid <= 0:
        return None
    if set(process) - _PROCESS_KEYS or set(process.get("user") or {}) - {
            "uid", "gid", "additionalGids"}:
        return None
    if process.get("apparmorProfile") and _apparmor_enabled():
        return None
    linux = spec.get("linux") or {}
    if any(linux.get(k) for k in _LINUX_UNSUPPORTED):
        return None
    types = {ns.get("type") for ns in linux.get("namespaces") or []}
    if types - _KNOWN_NS or any(ns.get("type") == "pid" and ns.get("path")
                                for ns in linux.get("namespaces") or []):
        return None     # another container's pid namespace: its processes, its caps
    if "CAP_SYS_PTRACE" in ((spec.get("process") or {}).get("capabilities") or {}).get(
            "bounding", ["CAP_SYS_PTRACE"]):
        # its processes could ptrace the forked side before it execs (the dumpable
        # check does not stop CAP_SYS_PTRACE); runc's init is a sealed copy of runc
        return None
    caps = _cap_masks(process.get("capabilities") or {})
    rlimits = _rlimits(process.get("rlimits") or [])
    if caps is None or rlimits is None:
        return None
    started = start_time(init_pid)
    cgroups = _cgroup_dirs(init_pid, cid)        # the container's: then it is its init
    if started is None or cgroups is None or start_time(init_pid) != started:
        return None
    v1 = [path for names, path in cgroups if names]
    v2 = [path for names, path in cgroups if not names]
    seccomp = None
    if linux.get("seccomp"):
        seccomp = compile_profile(linux["seccomp"])
        if seccomp is None:
            return None
    return ExecPlan(cid, init_pid, [name for t, name in _NS_ORDER if t in types], v1,
                    v2[0] if v2 else None, _with_home(spec, process), caps, rlimits, seccomp,
                    bool((spec.get("process") or {}).get("noNewKeyring")), started)


def _with_home(spec: dict[str, Any], process: dict[str, Any]) -> dict[str, Any]:
    """runc sets HOME, when the process has none, from the user's passwd entry ("/"
    when there is none)."""
    env = list(process.get("env") or [])
    if any(e.startswith("HOME=") for e in env):
        return process
    uid = str((process.get("user") or {}).get("uid", 0))
    try:
        home = resolve_user((spec.get("root") or {}).get("path") or "/", uid).home
    except DockerError:
        home = "/"
    return {**process, "env": [*env, f"HOME={home}"]}


def _apparmor_enabled() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().strip() == "Y"
    except OSError:
        return False


def _cap_masks(caps: dict[str, list[str]]) -> dict[str, int] | None:
    out = {}
    for which in _CAP_SETS:
        mask = 0
        for name in caps.get(which) or []:
            try:
                mask |= 1 << KNOWN_CAPABILITIES.index(name)
            except ValueError:
                return None
        out[which] = mask
    return out


def _rlimits(items: list[dict[str, Any]]) -> list[tuple[int, int, int]] | None:
    out = []
    for r in items:
        res = rlimit_constant(str(r.get("type")))
        if res is None:
            return None
        out.append((res, _rlim(r.get("soft", 0)), _rlim(r.get("hard", 0))))
    return out


def _rlim(value: Any) -> int:
    n = int(value)
    return resource.RLIM_INFINITY if n >= RLIM_INFINITY or n < 0 else n


def _cgroup_dirs(pid: int, cid: str) -> list[tuple[str, str]] | None:
    """(hierarchy, directory) of each cgroup the container's init is in."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            text = f.read()
    except OSError:
        return None
    mounts = host_cgroup_mounts()
    out = []
    for names, path in parse_proc_cgroup(text):
        if names == UNIFIED and not mounts.has_unified:
            continue
        directory = mounts.directory(names, path)
        if directory is None or cid[:12] not in path:
            return None          # not the container's own cgroup (a reused pid?)
        out.append((names, directory))
    return out or None


async def spawn(plan: ExecPlan, stdio: tuple[int, int, int]) -> tuple[int, int | None]:
    """Start the planned process; (its pid, the pty master or None). Errors are the
    runc messages (`exec: "x": executable file not found in $PATH`) as ExecFailed.
    The fork server forks it (never the daemon: a fork of a process with other
    threads, gRPC's in a swarm, may hang on a lock one of them held); NoForkServer
    when it cannot run or the request could not be sent, so nothing was started."""
    if not await _SERVER.up():
        raise NoForkServer()
    err_r, err_w = os.pipe()
    parent_sock = child_sock = None
    if plan.process.get("terminal"):
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child_fds = [child_sock.fileno()] if child_sock is not None else list(stdio)
    master: int | None = None
    pid: int | None = 0
    given = 0
    try:
        try:
            pid = await _SERVER.fork(plan, [err_w, *child_fds])
            given = pid or 0
        except ConnectionError as e:
            raise ExecFailed(str(e)) from None
        if pid is None:
            raise NoForkServer()
        # B goes on from here: from now on a start that does not return its pid (a
        # cancel, a failure) ends it
        os.close(err_w)
        err_w = -1
        if child_sock is not None:
            child_sock.close()
            child_sock = None
        if pid:
            err = await read_pipe(err_r)       # until B execs, or reports
        else:
            try:        # A failed, and says why; or it is stuck (frozen) and holds it
                err = await asyncio.wait_for(read_pipe(err_r), 2.0)
            except asyncio.TimeoutError:
                err = b""
        if not pid or err:
            if pid:
                await wait_pid(pid)             # B reported and _exits: reap it
                pid = 0
            raise ExecFailed(err.decode(errors="replace") or "the exec helper failed")
        if parent_sock is not None:
            master = _recv_master(parent_sock)
        started, pid = pid, 0
        return started, master
    finally:
        if pid:
            _SERVER.end(pid)
        if given:
            _SERVER.settled(given)
        os.close(err_r)
        if err_w >= 0:
            os.close(err_w)
        for sock in (parent_sock, child_sock):
            if sock is not None:
                sock.close()


class ExecFailed(Exception):
    pass


class NoForkServer(Exception):
    """The exec fork server cannot run: nothing was started, runc exec can."""


def end_unstarted(pid: int) -> None:
    """An exec process whose start was cancelled once it ran (our child): killed and
    reaped, by the owner of such ends (the fork server's client)."""
    _SERVER.end(pid)


def reap_killed(pidfds: list[int]) -> None:
    """Processes killed that become ours (what a cancelled start's runc had started,
    parents first): reaped through their pidfds by the owner of such ends."""
    _SERVER.reap(pidfds)


async def close_fork_server() -> None:
    """Daemon shutdown: the fork server goes (exec processes are not its children)."""
    await _SERVER.close()


def _recv_master(sock: socket.socket) -> int:
    sock.setblocking(False)
    _, fds, _, _ = socket.recv_fds(sock, 1, 1)
    if not fds:
        raise ExecFailed("no console from the exec helper")
    os.set_inheritable(fds[0], False)
    return fds[0]

