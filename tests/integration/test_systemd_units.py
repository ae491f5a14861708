"""contrib/systemd: the units pass `systemd-analyze verify`, and pydockerd behaves
as pydockerd.service needs when started the way systemd starts it (without
systemd as PID 1: systemd-socket-activate passes the socket as systemd does).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import ROOT, cleanup_daemon, make_daemon
from pydockerd.runtime.pidwatch import pid_alive

ANALYZE = shutil.which("systemd-analyze")
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze missing (install.sh installs "
                    "Debian's systemd package)")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    # the units as install.sh installs them: ExecStart names the real console script
    subprocess.run(["bash", str(ROOT / "scripts" / "systemd-units.sh"), str(tmp_path)],
                   check=True, capture_output=True, timeout=60)
    service = (tmp_path / "pydockerd.service").read_text()
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    assert exec_start.endswith(" -H fd://") and os.access(exec_start.split()[0][10:], os.X_OK)
    assert "Type=notify" in service and "ExecReload=/bin/kill -s HUP $MAINPID" in service
    assert "KillMode=process" in service and "LimitNOFILE=infinity" not in service
    r = subprocess.run([ANALYZE, "verify", str(tmp_path / "pydockerd.socket"),
                        str(tmp_path / "pydockerd.service")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stdout + r.stderr


class NotifySocket:
    """The service manager's side of sd_notify: a datagram socket the daemon writes to."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def next(self, timeout: float = 30) -> dict[str, str]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines() if "=" in line)

    def close(self) -> None:
        self.sock.close()


def _activated_argv(argv: list[str], sock_path: str,
                    env: dict[str, str]) -> tuple[list[str], socket.socket | None]:
    """argv of a pydockerd started with -H fd:// on a socket passed as systemd passes
    it: fd 3, LISTEN_FDS=1, LISTEN_PID=the daemon's pid, LISTEN_FDNAMES (and the
    listener to close once the daemon is started, if this made it)."""
    i = argv.index("-H")
    argv = argv[:i] + ["-H", "fd://"] + argv[i + 2:]
    if SOCKET_ACTIVATE:
        # systemd's own implementation: listens, execs the daemon on the first connection
        return [SOCKET_ACTIVATE, "-l", sock_path, "--fdname=pydockerd.socket",
                *(f"-E{k}={v}" for k, v in env.items()), *argv], None
    # without it: the socket is made here and put on fd 3 by a shell that execs
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(64)
    os.set_inheritable(listener.fileno(), True)
    script = (f'exec 3<&{listener.fileno()} {listener.fileno()}<&-; LISTEN_PID=$$ '
              'LISTEN_FDS=1 LISTEN_FDNAMES=pydockerd.socket exec "$@"')
    return ["bash", "-c", script, "bash", *argv], listener


def _wait_for(pred, what: str, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_socket_activated_daemon_notifies_reloads_and_stops(images_dir: Path) -> None:
    d = make_daemon(Path(tempfile.mkdtemp(prefix="pdt-", dir="/tmp")))
    notify = NotifySocket(d.base / "notify.sock")
    env = {"NOTIFY_SOCKET": notify.path, "PYTHONPATH": str(ROOT / "src")}
    argv, listener = _activated_argv(d.argv(), d.socket, env)
    logf = open(d.log_path, "ab")
    try:
        d.proc = subprocess.Popen(argv, env=dict(os.environ, **env), stdout=logf, stderr=logf,
                                  start_new_session=True,
                                  pass_fds=[listener.fileno()] if listener else [])
        if listener:
            listener.close()
        _wait_for(lambda: os.path.exists(d.socket), "the activation socket")
        # the first connection activates the daemon (systemd-socket-activate execs it
        # then); the request waits in the socket's backlog until the API answers
        assert d.out("version", "--format", "{{.Server.APIVersion}}").strip() == "1.50"
        ready = notify.next()
        assert ready.get("READY") == "1" and "fd://" in ready.get("STATUS", ""), ready
        # children do not inherit NOTIFY_SOCKET: `runc start` would wait for the
        # container to send READY=1 itself
        d.cli("load", "-i", str(images_dir / "busybox.tar"))
        assert d.out("run", "--rm", "busybox", "echo", "hi", timeout=60) == "hi\n"
        d.out("run", "-d", "--name", "keeps-running", "busybox", "sleep", "600")
        pid = int(d.inspect("keeps-running")["State"]["Pid"])

        # ExecReload=/bin/kill -s HUP $MAINPID
        (d.base / "daemon.json").write_text(json.dumps({"live-restore": True}))
        d.proc.send_signal(signal.SIGHUP)
        reloading = notify.next()
        assert reloading.get("RELOADING") == "1" and int(reloading["MONOTONIC_USEC"]) > 0
        assert notify.next().get("READY") == "1"
        assert "SIGHUP: reloaded live_restore=True" in d.log_path.read_text()
        assert d.out("info", "--format", "{{.LiveRestoreEnabled}}").strip() == "true"

        # systemctl stop with KillMode=process: SIGTERM to the daemon alone
        d.proc.send_signal(signal.SIGTERM)
        assert notify.next().get("STOPPING") == "1"
        assert d.proc.wait(timeout=60) == 0, d.log_tail()
        assert "daemon shut down" in d.log_path.read_text()
        # the socket is systemd's: still there for the next activation
        assert os.path.exists(d.socket)
        # live-restore: the container outlives the daemon
        assert pid_alive(pid)
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.send_signal(signal.SIGTERM)
            d.proc.wait(timeout=60)
        d.proc = None
        cleanup_daemon(d)
        notify.close()
        logf.close()
        shutil.rmtree(d.base, ignore_errors=True)


def test_fd_host_names_a_passed_socket(tmp_path: Path) -> None:
    """fd://<name> picks a socket by its LISTEN_FDNAMES name; no passed socket is an error."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    common = ["--data-root", f"{tmp_path}/data", "--exec-root", f"{tmp_path}/exec",
              "--pidfile", f"{tmp_path}/pid", "-b", "none", "--iptables=false",
              "--config-file", f"{tmp_path}/none.json"]
    r = subprocess.run([sys.executable, "-m", "pydockerd", "-H", "fd://", *common],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "no sockets found via socket activation" in r.stderr
    r = subprocess.run(["bash", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=api '
                        'exec "$@" 3</dev/null', "bash", sys.executable, "-m", "pydockerd",
                        "-H", "fd://other", *common],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "no socket named other" in r.stderr, r.stderr
