"""The forked side of runtime/nsexec.py: what runs between fork and exec.

Everything is prepared before the fork (`Prepared.build`: encoded strings,
ctypes buffers, the libc handle), so the children only make system calls:
no imports, no logging, no locks another thread of the daemon could hold.
A child never returns: it execs or reports on the error pipe and _exits.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import signal
import stat
from dataclasses import dataclass
from typing import Any

from .devpts import NotDevpts, attach_console
from .execplan import ExecPlan, open_init

_PR_CAPBSET_DROP = 24
_PR_SET_KEEPCAPS = 8
_PR_SET_DUMPABLE = 4
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_SECCOMP_SET_MODE_FILTER = 1
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_RAISE = 2
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_KEYCTL_JOIN_SESSION_KEYRING = 1
_CAP_VERSION_3 = 0x20080522
_CLONE_INTO_CGROUP = 0x200000000
_SYS_CLONE3 = 435              # the same on every architecture (a new-style number)
_PREFIX = "exec failed: unable to start container process: "
# syscall numbers called through syscall(2): keyctl, seccomp
SYSCALLS = {"x86_64": (250, 317), "aarch64": (219, 277)}


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _CloneArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size",
        "tls", "set_tid", "set_tid_size", "cgroup")]


class _Failure(Exception):
    pass


@dataclass
class Prepared:
    libc: ctypes.CDLL
    pylibc: ctypes.PyDLL
    sys_keyctl: int
    sys_seccomp: int
    init_pid: int
    init_start: int
    namespaces: list[str]
    cgroups_v1: list[str]
    cgroup_v2: str | None
    oom_score_adj: int | None
    keyring: bytes | None
    terminal: bool
    console: tuple[int, int] | None
    rlimits: list[tuple[int, int, int]]
    nnp: bool
    seccomp_buf: Any
    seccomp_prog: Any
    seccomp_flags: int
    bounding: int
    caps: tuple[int, int, int]          # effective, permitted, inheritable
    ambient: int
    last_cap: int
    uid: int
    gid: int
    groups: list[int]
    cwd: str
    args: list[str]
    env: dict[str, str]

    @classmethod
    def build(cls, plan: ExecPlan, syscalls: tuple[int, int]) -> "Prepared":
        p = plan.process
        user = p.get("user") or {}
        env: dict[str, str] = {}
        for e in p.get("env") or []:
            k, _, v = e.partition("=")
            env[k] = v
        buf = prog = None
        if plan.seccomp is not None:
            buf = ctypes.create_string_buffer(plan.seccomp.bpf, len(plan.seccomp.bpf))
            prog = _SockFprog(len(plan.seccomp.bpf) // 8, ctypes.addressof(buf))
        size = p.get("consoleSize") or {}
        gid = int(user.get("gid", 0))
        return cls(
            _libc(), _pylibc(), syscalls[0], syscalls[1], plan.init_pid, plan.init_start,
            plan.namespaces, plan.cgroups_v1, plan.cgroup_v2, p.get("oomScoreAdj"),
            None if plan.no_new_keyring else f"_ses.{plan.cid}".encode(),
            bool(p.get("terminal")),
            (int(size["height"]), int(size["width"])) if size.get("height") else None,
            plan.rlimits, bool(p.get("noNewPrivileges")), buf, prog,
            plan.seccomp.flags if plan.seccomp else 0, plan.caps["bounding"],
            (plan.caps["effective"], plan.caps["permitted"], plan.caps["inheritable"]),
            plan.caps["ambient"], _last_cap(), int(user.get("uid", 0)), gid,
            [int(g) for g in user.get("additionalGids") or []] or [gid],
            p.get("cwd") or "/", list(p.get("args") or []), env)


_cached: dict[str, Any] = {}


def _libc() -> ctypes.CDLL:
    if "libc" not in _cached:
        _cached["libc"] = ctypes.CDLL(None, use_errno=True)
    lib: ctypes.CDLL = _cached["libc"]
    return lib


def _pylibc() -> ctypes.PyDLL:
    if "pylibc" not in _cached:
        _cached["pylibc"] = ctypes.PyDLL(None, use_errno=True)
    lib: ctypes.PyDLL = _cached["pylibc"]
    return lib


def _last_cap() -> int:
    if "last_cap" not in _cached:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            _cached["last_cap"] = int(f.read())
    n: int = _cached["last_cap"]
    return n


def run_child_a(prep: Prepared, stdio: tuple[int, int, int], pid_w: int, err_w: int,
                console_fd: int, go_r: int) -> None:
    """Fork A: cgroups, namespaces, then B in the container's pid namespace; `go_r`:
    the pipe on which B waits for the fork server's go (nsserver.py)."""
    code = 0
    try:
        try:
            signal.set_wakeup_fd(-1)         # the daemon's loop must not hear our signals
        except ValueError:
            pass
        _seal(prep, (*stdio, pid_w, err_w, console_fd, go_r))
        if prep.oom_score_adj is not None:
            _write("/proc/self/oom_score_adj", str(prep.oom_score_adj))
        init = open_init(prep.init_pid, prep.init_start)   # not a reused pid
        # v1: this (single) thread moves itself through `tasks`, which spares the
        # kernel's global threadgroup lock and its RCU grace period (~10 ms); B
        # inherits the cgroups at fork
        for path in prep.cgroups_v1:
            _write(os.path.join(path, "tasks"), "0")
        cg_fd = -1
        if prep.cgroup_v2 is not None:
            cg_fd = os.open(prep.cgroup_v2, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        fds = [os.open(f"ns/{n}", os.O_RDONLY | os.O_CLOEXEC, dir_fd=init)
               for n in prep.namespaces]
        os.close(init)
        # the host's /proc, for B's reopen of the container's ptmx (runtime/devpts.py)
        proc = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) \
            if prep.terminal else -1
        for fd, name in zip(fds, prep.namespaces):
            _check(prep.libc.setns(fd, 0), f"failed to setns to {name}")
            os.close(fd)
        child = _fork_into(prep, cg_fd)
        if child == 0:
            os.close(pid_w)
            _await_go(go_r)
            _run_child_b(prep, stdio, err_w, console_fd, proc)
        os.write(pid_w, str(child).encode())
    except BaseException as e:       # noqa: BLE001 - reported, then _exit
        code = 1
        _report(err_w, e)
    os._exit(code)


def _seal(prep: Prepared, keep: tuple[int, ...]) -> None:
    """Before anything joins the container: not dumpable (as runc's nsexec), so the
    container's processes can neither ptrace B nor open its /proc entries (exe, fd,
    mem, root) until it execs, which makes it dumpable again; and no descriptor of
    the parent's but the ones the exec needs. (A container holding CAP_SYS_PTRACE,
    which passes the dumpable check, never gets here: nsexec.plan_exec leaves it
    to runc.)"""
    _check(prep.libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0), "set non-dumpable")
    low = 3
    for fd in sorted({fd for fd in keep if fd >= 3}):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


def _fork_into(prep: Prepared, cg_fd: int) -> int:
    """Fork B straight into the unified cgroup (clone3's CLONE_INTO_CGROUP: no
    migration, so no global lock either); where the kernel cannot, A moves itself
    through cgroup.procs first, as runc does."""
    if cg_fd < 0:
        return os.fork()
    args = _CloneArgs(flags=_CLONE_INTO_CGROUP, exit_signal=signal.SIGCHLD, cgroup=cg_fd)
    # PyDLL: the GIL stays held across the call, so the child returns holding it
    pid: int = prep.pylibc.syscall(_SYS_CLONE3, ctypes.byref(args), ctypes.sizeof(args))
    if pid >= 0:
        return pid
    _write_at(cg_fd, "cgroup.procs", str(os.getpid()))
    return os.fork()


def _await_go(go_r: int) -> None:
    """B's first step: wait until the fork server has B's pid (and A is gone); the
    pipe's end without the byte (A killed as stuck, the server gone) ends B here,
    before it did anything in the container."""
    try:
        go = os.read(go_r, 1)
    except OSError:
        go = b""
    if go != b"g":
        os._exit(127)
    os.close(go_r)


def _run_child_b(prep: Prepared, stdio: tuple[int, int, int], err_w: int,
                 console_fd: int, proc: int) -> None:
    try:
        _setup_b(prep, stdio, err_w, console_fd, proc)
    except BaseException as e:       # noqa: BLE001 - reported, then _exit
        _report(err_w, e)
    os._exit(127)


def _setup_b(prep: Prepared, stdio: tuple[int, int, int], err_w: int,
             console_fd: int, proc: int) -> None:
    libc = prep.libc
    os.setsid()
    if prep.keyring is not None:
        if libc.syscall(prep.sys_keyctl, _KEYCTL_JOIN_SESSION_KEYRING, prep.keyring) < 0 \
                and ctypes.get_errno() != errno.ENOSYS:
            _check(-1, "unable to join session keyring")
    if prep.terminal:
        try:        # a pty of the container's devpts, opened as runc does
            attach_console(libc, proc, console_fd, prep.console)
        except (OSError, NotDevpts) as e:
            raise _Failure(f"failed to allocate a console in the container: {e}") from None
    else:
        for i, fd in enumerate(stdio):
            os.dup2(fd, i)
    os.closerange(3, err_w)
    os.closerange(err_w + 1, 1 << 20)
    for res, soft, hard in prep.rlimits:
        resource.setrlimit(res, (soft, hard))
    if prep.nnp:
        _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "set no_new_privs")
    if prep.seccomp_prog is not None and not prep.nnp:
        _load_seccomp(prep)
    # finalizeNamespace
    for cap in range(prep.last_cap + 1):
        if not prep.bounding >> cap & 1 and libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 \
                and ctypes.get_errno() != errno.EINVAL:
            _check(-1, "drop bounding set")
    _check(libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0), "set keep caps")
    chdir_later = False
    try:
        os.chdir(prep.cwd)
    except PermissionError:
        chdir_later = True
    except OSError as e:
        raise _Failure(f"chdir to cwd ({json.dumps(prep.cwd)}) set in config.json failed: "
                       f"{_go_errno(e)}") from None
    _fix_stdio(prep.uid, prep.gid)
    os.setgroups(prep.groups)
    os.setgid(prep.gid)
    os.setuid(prep.uid)
    if chdir_later:
        try:
            os.chdir(prep.cwd)
        except OSError as e:
            raise _Failure(f"chdir to cwd ({json.dumps(prep.cwd)}) set in config.json "
                           f"failed: {_go_errno(e)}") from None
    _check(libc.prctl(_PR_SET_KEEPCAPS, 0, 0, 0, 0), "clear keep caps")
    _capset(prep)
    name = _look_path(prep.args[0] if prep.args else "", prep.env.get("PATH", ""))
    if not os.access(name, os.X_OK, effective_ids=True):
        raise _Failure(f"exec {name}: permission denied")
    if prep.seccomp_prog is not None and prep.nnp:
        _load_seccomp(prep)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    try:
        os.execve(name, prep.args, prep.env)
    except OSError as e:
        raise _Failure(f"exec {name}: {_go_errno(e)}") from None


def _load_seccomp(prep: Prepared) -> None:
    libc = prep.libc
    if prep.seccomp_flags:
        rc = libc.syscall(prep.sys_seccomp, _SECCOMP_SET_MODE_FILTER, prep.seccomp_flags,
                          ctypes.byref(prep.seccomp_prog))
    else:
        rc = libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER,
                        ctypes.byref(prep.seccomp_prog), 0, 0)
    _check(rc, "error loading seccomp filter into kernel")


def _capset(prep: Prepared) -> None:
    libc = prep.libc
    header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
    eff, perm, inh = prep.caps
    data = (ctypes.c_uint32 * 6)(eff & 0xFFFFFFFF, perm & 0xFFFFFFFF, inh & 0xFFFFFFFF,
                                 eff >> 32, perm >> 32, inh >> 32)
    _check(libc.capset(header, data), "capset")
    _check(libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "ambient caps")
    for cap in range(prep.last_cap + 1):
        if prep.ambient >> cap & 1:
            _check(libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, cap, 0, 0),
                   "ambient caps")


def _fix_stdio(uid: int, gid: int) -> None:
    """runc's fixStdioPermissions: stdio the user could not reopen becomes theirs
    (/dev/null and what they already own are left alone)."""
    null = os.stat("/dev/null").st_rdev
    for fd in range(3):
        st = os.fstat(fd)
        if (stat.S_ISCHR(st.st_mode) and st.st_rdev == null) or st.st_uid == uid:
            continue
        try:
            os.fchown(fd, uid, gid)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EPERM, errno.EROFS):
                raise


def _look_path(file: str, path: str) -> str:
    """Go's exec.LookPath, and its messages."""
    if "/" in file:
        err = _find_executable(file)
        if err is None:
            return file
        raise _Failure(f"exec: {json.dumps(file)}: {err}")
    for d in path.split(":"):
        candidate = os.path.join(d or ".", file)
        if _find_executable(candidate) is None:
            return candidate
    raise _Failure(f"exec: {json.dumps(file)}: executable file not found in $PATH")


def _find_executable(file: str) -> str | None:
    try:
        st = os.stat(file)
    except OSError as e:
        return f"stat {file}: {_go_errno(e)}"
    if not stat.S_ISDIR(st.st_mode) and st.st_mode & 0o111:
        return None
    return "permission denied"


def _go_errno(e: OSError) -> str:
    text = os.strerror(e.errno) if e.errno else str(e)
    return text[:1].lower() + text[1:]


def _check(rc: int, what: str) -> None:
    if rc < 0:
        err = ctypes.get_errno()
        raise _Failure(f"{what}: {_go_errno(OSError(err, os.strerror(err)))}")


def _write_at(dir_fd: int, name: str, text: str) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _report(err_w: int, e: BaseException) -> None:
    msg = str(e) if isinstance(e, _Failure) else f"{type(e).__name__}: {e}"
    try:
        os.write(err_w, (_PREFIX + msg).encode(errors="replace"))
    except OSError:
        pass
