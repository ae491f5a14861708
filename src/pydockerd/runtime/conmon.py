"""One conmon per container: it holds stdio and the TTY, writes the log,
records the exit code and offers an attach socket. It keeps running when
pydockerd stops, so containers outlive the daemon.

Files of a running container (bundle dir, under the exec root):
  config.json  the OCI spec          attach  conmon's SOCK_SEQPACKET attach socket
  ctl          resize fifo ("1 h w") conmon.pid / pidfile  conmon's and the container's pids
  status/      conmon's persist dir: `exit` (exit code), `oom`
  log-<ns>.spool  the run's output in k8s-file format, which the daemon's log pipeline
               (logdrivers/) turns into the log driver's files; log.cursor its progress
Conmon also writes the code to `<exit-dir>/<id>`. Both are under the exec root
(a tmpfs), never on the data root: conmon gives up without writing any exit
file when the first write fails, so a full data root would lose the code.
`collect_exit` reads them and keeps a durable copy in the persist dir under
the data root when the disk has room (read after a reboot wiped the exec root).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
from dataclasses import dataclass
from typing import Any

import msgspec

from ..errors import SystemError_
from ..util.fdstream import read_pipe
from ..util.fsatomic import write_atomic
from .mountns import NSENTER
from .pidwatch import pid_alive, wait_pid

log = logging.getLogger("pydockerd.conmon")

CONMON = "/usr/bin/conmon"
STDOUT_PIPE = 2   # first byte of each packet on the attach socket
STDERR_PIPE = 3


@dataclass(frozen=True)
class ConmonSpec:
    cid: str
    name: str
    bundle: str          # contains config.json; conmon puts attach/ctl/status here
    persist_dir: str     # under the data root: the durable copy of exit, oom
    exit_dir: str        # under the exec root: <cid> holds the exit code
    log_path: str        # the run's spool (k8s-file, read by the log pipeline); "" -> none
    tty: bool
    stdin: bool
    runc: str
    runc_root: str
    stdin_once: bool = False
    mount_ns: str = ""   # run `runc create` in this mount namespace (runtime/mountns.py)


@dataclass(frozen=True)
class Started:
    conmon_pid: int
    pid: int


@dataclass(frozen=True)
class ExitStatus:
    code: int | None     # None: no exit file (conmon was killed, or the files are gone)
    oom_killed: bool


def _status_dir(spec: ConmonSpec) -> str:
    return os.path.join(spec.bundle, "status")


def _exit_files(spec: ConmonSpec) -> list[str]:
    """Every exit and oom file a previous run of the container may have left."""
    status, persist = _status_dir(spec), spec.persist_dir
    return [os.path.join(status, "exit"), os.path.join(status, "oom"),
            os.path.join(spec.bundle, "oom"), os.path.join(spec.exit_dir, spec.cid),
            os.path.join(persist, "exit"), os.path.join(persist, "oom")]


def _clean_runtime_files(bundle: str) -> None:
    for name in ("attach", "ctl", "winsz", "pidfile", "conmon.pid"):
        try:
            os.unlink(os.path.join(bundle, name))
        except FileNotFoundError:
            pass


async def create(spec: ConmonSpec, oci_config: dict[str, Any]) -> Started:
    """Write config.json, start conmon (which runs `runc create`); return pids."""
    os.makedirs(_status_dir(spec), exist_ok=True)
    for path in _exit_files(spec):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    _clean_runtime_files(spec.bundle)
    # runtime state under the exec root, written again at every start: no fsync
    write_atomic(os.path.join(spec.bundle, "config.json"), msgspec.json.encode(oci_config),
                 fsync=False)
    argv = conmon_argv(spec)
    r, w = os.pipe()
    # TZ: conmon stamps log records in its local time; UTC saves a conversion per line
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "_OCI_SYNCPIPE": str(w), "TZ": "UTC"}
    log.debug("exec: %s", " ".join(argv))
    err_path = os.path.join(spec.bundle, "conmon.err")
    try:
        with open(err_path, "wb") as errf:
            proc = subprocess.Popen(argv, pass_fds=[w], env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=errf,
                                    start_new_session=True)
    except OSError as e:
        os.close(r)
        os.close(w)
        raise SystemError_(f"cannot start conmon: {e}") from e
    os.close(w)
    try:
        # on the event loop, not in pooled threads: `runc create` takes a while, and
        # concurrent starts would hold (and queue for) the default executor's workers
        raw = await read_pipe(r, until=b"\n")   # one JSON line; open until conmon forks
        # the first conmon process exits right after forking its monitor
        proc.returncode = await wait_pid(proc.pid)
    finally:
        os.close(r)
    msg = _parse_sync(raw)
    pid = msg.get("data", -1) if msg else -1
    if not isinstance(pid, int) or pid <= 0:
        await _reap_failed_monitor(spec.bundle)
        with open(err_path, "rb") as f:
            err = f.read()
        detail = (msg or {}).get("message") or err.decode(errors="replace").strip() \
            or "conmon exited without starting the container"
        raise SystemError_(_runc_message(detail))
    with open(os.path.join(spec.bundle, "conmon.pid")) as f:
        conmon_pid = int(f.read().strip())
    return Started(conmon_pid, pid)


def conmon_argv(spec: ConmonSpec) -> list[str]:
    """conmon's command line for the run."""
    argv = [CONMON, "--api-version", "1", "-c", spec.cid, "-u", spec.cid, "-n", spec.name,
            *_runtime_args(spec),
            "-b", spec.bundle, "-p", os.path.join(spec.bundle, "pidfile"),
            "-P", os.path.join(spec.bundle, "conmon.pid"),
            "--exit-dir", spec.exit_dir, "--persist-dir", _status_dir(spec),
            "--socket-dir-path", spec.bundle, "--full-attach", "--log-level", "error",
            # no fsync of the spool at the container's exit (0.2 to several ms, in the
            # exit's critical path): it lives under the exec root, a tmpfs that a reboot
            # wipes however it was synced (what survives is what the log pipeline
            # delivered to the log driver)
            "--no-sync-log"]
    argv += ["-l", f"k8s-file:{spec.log_path}"] if spec.log_path else ["-l", "none:"]
    if spec.tty:
        argv.append("-t")
    if spec.stdin:
        argv.append("-i")
        if not spec.stdin_once:
            argv.append("--leave-stdin-open")
    return argv


def _runtime_args(spec: ConmonSpec) -> list[str]:
    """conmon's runtime and the arguments before `create`: runc, or nsenter into
    spec.mount_ns running runc."""
    runtime = [spec.runc, "--root", spec.runc_root]
    if spec.mount_ns:
        runtime = [NSENTER, f"--mount={spec.mount_ns}", *runtime]
    args = ["-r", runtime[0]]
    for arg in runtime[1:]:
        args += ["--runtime-arg", arg]
    return args


async def _reap_failed_monitor(bundle: str) -> None:
    """conmon's monitor (our child: we are a subreaper) exits after a failed create."""
    try:
        with open(os.path.join(bundle, "conmon.pid")) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return
    try:
        await asyncio.wait_for(wait_pid(pid), 5)
    except asyncio.TimeoutError:
        log.warning("conmon %d did not exit after a failed create", pid)


def _parse_sync(raw: bytes) -> dict[str, Any] | None:
    for line in raw.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict):
            return msg
    return None


def _runc_message(detail: str) -> str:
    """Turn runc's log noise into the message a user needs."""
    for line in detail.splitlines():
        if "msg=" in line:
            msg = line.split("msg=", 1)[1].strip().strip('"')
            return f"OCI runtime create failed: {msg}".replace('\\"', '"')
    return f"OCI runtime create failed: {detail.strip()}"


def collect_exit(spec: ConmonSpec) -> ExitStatus:
    """The exit status conmon recorded under the exec root (or, once a reboot wiped
    that, the durable copy); the durable copy is written when the disk has room."""
    files = _exit_files(spec)
    code = _read_code(files[0]) if os.path.exists(files[0]) else _read_code(files[3])
    oom = os.path.exists(files[1]) or os.path.exists(files[2])
    if code is None:
        return ExitStatus(_read_code(files[4]), oom or os.path.exists(files[5]))
    try:
        os.makedirs(spec.persist_dir, exist_ok=True)
        write_atomic(files[4], str(code), fsync=False)
        if oom:
            open(files[5], "wb").close()
    except OSError as e:
        log.info("%s: no durable copy of the exit code (%s); it stays under the exec root",
                 spec.cid[:12], e)
    return ExitStatus(code, oom)


def _read_code(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip() or "0")
    except (OSError, ValueError):
        return None


def resize(bundle: str, height: int, width: int) -> None:
    """Ask conmon to resize the container's TTY."""
    path = os.path.join(bundle, "ctl")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        os.write(fd, f"1 {height} {width}\n".encode())
    finally:
        os.close(fd)


def is_monitor_of(pid: int, cid: str) -> bool:
    """Is `pid` alive and the conmon of container `cid` (pids get reused)?"""
    if not pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return False
    return bool(args) and args[0].endswith(b"conmon") and cid.encode() in args
