"""Interactive use through a real pseudo-terminal: docker run -it, exec -it, attach."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import termios
import select
import subprocess
import time


def run_in_pty(daemon, args: list[str], steps: list[tuple[bytes, bytes]],
               timeout: float = 15, size: tuple[int, int] = (24, 80),
               config_dir: str | None = None) -> tuple[int, bytes]:
    """Run docker with a pty; for each (wait_for, send) wait for output then type."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    env = dict(os.environ, DOCKER_HOST=daemon.host,
               DOCKER_CONFIG=config_dir or str(daemon.base / "cli"))
    p = subprocess.Popen(["docker", *args], stdin=slave, stdout=slave, stderr=slave, env=env,
                         start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.time() + timeout
    pending = list(steps)
    while time.time() < deadline:
        if pending and pending[0][0] in out:
            os.write(master, pending.pop(0)[1])
        r, _, _ = select.select([master], [], [], 0.1)
        if r:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            out += data
        elif p.poll() is not None:
            break
    try:
        rc = p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = -1
    os.close(master)
    return rc, out


def test_run_it_shell(daemon):
    rc, out = run_in_pty(daemon, ["run", "-it", "--rm", "busybox", "sh"],
                         [(b"# ", b"echo hi-$((40+2))\r"), (b"hi-42", b"exit 7\r")])
    assert b"hi-42" in out
    assert rc == 7


def test_exec_it(daemon):
    daemon.cli("run", "-d", "--name", "ttyexec", "busybox", "sleep", "300")
    try:
        rc, out = run_in_pty(daemon, ["exec", "-it", "ttyexec", "sh"],
                             [(b"# ", b"tty\r"), (b"/dev/pts", b"exit 3\r")])
        assert b"/dev/pts/" in out and rc == 3
    finally:
        daemon.cli("rm", "-f", "ttyexec")


def _exec_procs(daemon, ctr: str) -> list[str]:
    return [line.split(None, 2)[-1] for line in daemon.out("exec", ctr, "ps").splitlines()[1:]]


def test_exec_it_detach_leaves_the_process_running(daemon):
    daemon.cli("run", "-d", "--name", "ttyexecdetach", "busybox", "sleep", "300")
    try:
        rc, out = run_in_pty(daemon, ["exec", "-it", "ttyexecdetach", "sh"],
                             [(b"# ", b"echo hi-$((40+2))\r"), (b"hi-42", b"\x10\x11")])
        assert b"hi-42" in out and b"read escape sequence" in out, out
        assert rc == 1                  # the CLI reports the detach, as with dockerd
        # the shell goes on running (dockerd does not close a TTY exec's stdin)
        assert "sh" in _exec_procs(daemon, "ttyexecdetach")
    finally:
        daemon.cli("rm", "-f", "ttyexecdetach")


def test_exec_it_detach_keys_from_the_cli_config(daemon, tmp_path):
    """The CLI sends its config file's detachKeys in exec create: the daemon watches
    those (and no longer ctrl-p,ctrl-q) for that exec."""
    (tmp_path / "config.json").write_text(json.dumps({"detachKeys": "ctrl-a"}))
    daemon.cli("run", "-d", "--name", "ttyexeckeys", "busybox", "sleep", "300")
    try:
        rc, out = run_in_pty(daemon, ["exec", "-it", "ttyexeckeys", "sh"],
                             [(b"# ", b"\x10\x11echo still-$((1+1))\r"),
                              (b"still-2", b"\x01")], config_dir=str(tmp_path))
        assert b"still-2" in out and b"read escape sequence" in out, out
        assert rc == 1
        assert "sh" in _exec_procs(daemon, "ttyexeckeys")
    finally:
        daemon.cli("rm", "-f", "ttyexeckeys")


def test_attach_and_detach_keys(daemon):
    daemon.cli("run", "-dit", "--name", "attachme", "busybox", "sh")
    try:
        rc, out = run_in_pty(daemon, ["attach", "attachme"],
                             [(b"", b"\r"), (b"# ", b"echo attached-$((1+1))\r"),
                              (b"attached-2", b"\x10\x11")])
        assert b"attached-2" in out
        assert b"read escape sequence" in out       # the CLI saw the detach, not an error
        assert daemon.out("inspect", "-f", "{{.State.Running}}", "attachme").strip() == "true"
    finally:
        daemon.cli("rm", "-f", "attachme")


def test_tty_size_reaches_container_and_exec(daemon):
    rc, out = run_in_pty(daemon, ["run", "-it", "--rm", "busybox", "sh"],
                         [(b"# ", b"stty size\r"), (b"31 101", b"exit\r")], size=(31, 101))
    assert b"31 101" in out
    daemon.cli("run", "-d", "--name", "ttysize", "busybox", "sleep", "300")
    try:
        rc, out = run_in_pty(daemon, ["exec", "-it", "ttysize", "sh"],
                             [(b"# ", b"stty size\r"), (b"27 93", b"exit\r")], size=(27, 93))
        assert b"27 93" in out
    finally:
        daemon.cli("rm", "-f", "ttysize")
