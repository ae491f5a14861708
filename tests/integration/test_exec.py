"""docker exec: attached, detached, env, user, exit codes, inspect."""
from __future__ import annotations

import socket
import struct
import time

import docker
import pytest

from polling import wait_until


def test_exec_variants(daemon):
    daemon.cli("run", "-d", "--name", "ex", "busybox", "sleep", "300")
    try:
        assert daemon.out("exec", "ex", "echo", "hi") == "hi\n"
        r = daemon.cli("exec", "ex", "sh", "-c", "echo o; echo e >&2; exit 4", check=False)
        assert r.returncode == 4 and r.stdout_text == "o\n" and r.stderr_text == "e\n"
        out = daemon.out("exec", "-e", "X=1", "-u", "65534", "-w", "/tmp", "ex",
                         "sh", "-c", "echo $X $(id -u) $(pwd)")
        assert out == "1 65534 /tmp\n"
        r = daemon.cli("exec", "-i", "ex", "cat", input=b"piped\n")
        assert r.stdout_text == "piped\n"
        daemon.cli("exec", "-d", "ex", "sh", "-c", "echo bg > /bg.txt")
        wait_until(lambda: daemon.cli("exec", "ex", "cat", "/bg.txt", check=False)
                   .stdout_text == "bg\n", what="the detached exec's file")
        r = daemon.cli("exec", "ex", "no-such-cmd", check=False)
        assert r.returncode == 126 or r.returncode == 127
    finally:
        daemon.cli("rm", "-f", "ex")


def test_exec_on_stopped_container_is_409(daemon):
    daemon.cli("create", "--name", "exstopped", "busybox")
    try:
        r = daemon.cli("exec", "exstopped", "true", check=False)
        assert r.returncode != 0 and "is not running" in r.stderr_text
    finally:
        daemon.cli("rm", "exstopped")


def test_exec_records_go_with_their_container(sdk):
    c = sdk.containers.run("busybox", ["sleep", "300"], detach=True)
    try:
        eid = sdk.api.exec_create(c.id, ["true"])["Id"]
        sdk.api.exec_start(eid)
        assert sdk.api.exec_inspect(eid)["ContainerID"] == c.id
    finally:
        c.remove(force=True)
    import docker
    try:
        sdk.api.exec_inspect(eid)
    except docker.errors.NotFound:
        pass
    else:
        raise AssertionError("exec inspect of a removed container's exec must be 404")


def _read_until(raw, want: bytes | None, timeout: float = 10) -> tuple[bytes, bool]:
    """Bytes from a hijacked socket until `want` shows (or, with None, until EOF);
    whether the stream ended."""
    raw.settimeout(0.2)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if want is not None and want in data:
            return data, False
        try:
            chunk = raw.recv(4096)
        except socket.timeout:
            continue
        if not chunk:
            return data, True
        data += chunk
    return data, False


def _demux(data: bytes) -> list[tuple[int, bytes]]:
    frames = []
    while len(data) >= 8:
        stream, size = data[0], struct.unpack(">L", data[4:8])[0]
        frames.append((stream, data[8:8 + size]))
        data = data[8 + size:]
    return frames


@pytest.fixture
def sleeper(sdk):
    c = sdk.containers.run("busybox", ["sleep", "300"], detach=True)
    try:
        yield c
    finally:
        c.remove(force=True)


def test_exec_with_an_env_larger_than_the_fork_servers_socket(sdk, sleeper):
    """A plan larger than the fork server's socket takes (EMSGSIZE): that exec runs
    through runc; an exec in flight meanwhile and the ones after still work."""
    slow = sdk.api.exec_create(sleeper.id, ["sh", "-c", "sleep 1; echo slow"])
    stream = sdk.api.exec_start(slow["Id"], stream=True)
    env = {f"BIG{i}": str(i) * 100_000 for i in range(4)}       # 400 KB
    code, out = sleeper.exec_run(["sh", "-c", "echo ${#BIG0} ${#BIG3}"], environment=env)
    assert (code, out) == (0, b"100000 100000\n")
    assert b"".join(stream) == b"slow\n"
    assert sleeper.exec_run(["echo", "after"]) == (0, b"after\n")


def test_exec_tty_is_decided_by_create(sdk, sleeper):
    """exec start's Tty only picks the framing: a TTY exec started with Tty=false
    runs on a terminal and its output comes in stdcopy frames (all of it on stdout);
    a plain exec started with Tty=true has no terminal and gets raw stdout only."""
    cmd = ["sh", "-c", "echo out; echo err >&2; tty"]
    eid = sdk.api.exec_create(sleeper.id, cmd, tty=True)["Id"]
    out, err = sdk.api.exec_start(eid, tty=False, demux=True)
    assert err is None and out == b"out\r\nerr\r\n/dev/pts/0\r\n", (out, err)
    assert sdk.api.exec_inspect(eid)["ProcessConfig"]["tty"] is True

    eid = sdk.api.exec_create(sleeper.id, cmd, tty=False)["Id"]
    assert sdk.api.exec_start(eid, tty=True) == b"out\nnot a tty\n"
    assert sdk.api.exec_inspect(eid)["ProcessConfig"]["tty"] is False


def test_exec_detach_keys_end_the_stream_and_the_process_runs_on(sdk, sleeper):
    eid = sdk.api.exec_create(sleeper.id, ["sh"], stdin=True, tty=True)["Id"]
    assert sdk.api.exec_inspect(eid)["DetachKeys"] == ""
    since = int(time.time()) - 1
    sock = sdk.api.exec_start(eid, tty=True, socket=True)
    raw = sock._sock
    try:
        raw.sendall(b"echo mark-$((2+3))\n")
        data, _ = _read_until(raw, b"mark-5")
        assert b"mark-5" in data, data
        raw.sendall(b"\x10\x11")        # ctrl-p ctrl-q: the default for a TTY exec
        _, ended = _read_until(raw, None)
        assert ended, "the detach must end the stream"
    finally:
        raw.close()
    assert sdk.api.exec_inspect(eid)["Running"] is True
    events = sdk.api.events(since=since, until=int(time.time()) + 1, decode=True,
                            filters={"container": sleeper.id})
    assert any(ev.get("Action") == "exec_detach" and
               ev["Actor"]["Attributes"].get("execID") == eid for ev in events)


def test_exec_detach_keys_of_create(sdk, sleeper):
    eid = sdk.api.exec_create(sleeper.id, ["sh"], stdin=True, tty=True,
                              detach_keys="ctrl-a,b")["Id"]
    assert sdk.api.exec_inspect(eid)["DetachKeys"] == "AWI="       # Go's []byte
    raw = sdk.api.exec_start(eid, tty=True, socket=True)._sock
    try:
        # ctrl-p ctrl-q is no detach here: it reaches the shell (and is ignored there)
        raw.sendall(b"\x10\x11echo mark-$((3+4))\n")
        data, ended = _read_until(raw, b"mark-7")
        assert b"mark-7" in data and not ended, data
        raw.sendall(b"\x01b")
        _, ended = _read_until(raw, None)
        assert ended
    finally:
        raw.close()
    assert sdk.api.exec_inspect(eid)["Running"] is True


def test_exec_without_tty_has_no_detach_keys(sdk, sleeper):
    eid = sdk.api.exec_create(sleeper.id, ["cat"], stdin=True,
                              detach_keys="ctrl-p,ctrl-q")["Id"]
    raw = sdk.api.exec_start(eid, socket=True)._sock
    try:
        raw.sendall(b"a\x10\x11b")
        raw.shutdown(socket.SHUT_WR)    # cat's stdin ends, so cat ends
        data, ended = _read_until(raw, None)
    finally:
        raw.close()
    assert ended and _demux(data) == [(1, b"a\x10\x11b")], data


def test_exec_create_refuses_bad_detach_keys(sdk, sleeper):
    before = sleeper.attrs["ExecIDs"]
    with pytest.raises(docker.errors.APIError) as ei:
        sdk.api.exec_create(sleeper.id, ["true"], detach_keys="ctrl-")
    assert ei.value.status_code == 400
    assert "Invalid escape keys (ctrl-) provided" in str(ei.value)
    sleeper.reload()
    assert sleeper.attrs["ExecIDs"] == before


def test_a_tty_exec_takes_its_pty_from_the_containers_devpts_only(daemon):
    """The exec's pty comes from /dev/pts/ptmx checked as devpts' ptmx (runc's
    safeAllocPty): a /dev/ptmx the container replaced does not matter, and a
    /dev/pts/ptmx it covered fails the exec with a clear error instead of handing
    the exec something else as its terminal."""
    name = "exptmx"
    daemon.cli("run", "-d", "--name", name, "--cap-add", "SYS_ADMIN", "busybox",
               "sleep", "300")
    try:
        daemon.cli("exec", name, "sh", "-c", "rm /dev/ptmx && ln -s /dev/null /dev/ptmx")
        r = daemon.cli("exec", "-t", name, "tty", check=False)
        assert r.returncode == 0 and r.stdout_text.startswith("/dev/pts/"), r
        daemon.cli("exec", name, "mount", "--bind", "/dev/null", "/dev/pts/ptmx")
        r = daemon.cli("exec", "-t", name, "tty", check=False)
        assert r.returncode != 0, r
        assert "devpts" in r.stdout_text + r.stderr_text, r
        assert daemon.out("exec", name, "echo", "plain") == "plain\n"
    finally:
        daemon.cli("rm", "-f", name)
