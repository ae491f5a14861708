"""POST /containers/{id}/attach follows dockerd's stream rules: detach keys count only
with a TTY, the end of the client's stdin ends the attach (or, for a StdinOnce
container without a TTY, closes the container's stdin), and a paused or restarting
container is refused with a 409."""
from __future__ import annotations

import socket
import struct
import time

import docker
import pytest

from polling import wait_until


def _attach(daemon, name: str, query: str = "stream=1&stdin=1&stdout=1&stderr=1"
            ) -> socket.socket:
    """A hijacked attach connection, its response head consumed."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(daemon.socket)
    s.sendall(f"POST /containers/{name}/attach?{query} HTTP/1.1\r\nHost: d\r\n"
              "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def _read_frames(s: socket.socket, until: bytes | None = None,
                 deadline: float = 10) -> tuple[bytes, bool]:
    """stdcopy payloads until `until` shows up or the stream ends; (data, ended)."""
    buf, data = b"", b""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        while len(buf) >= 8:
            size = struct.unpack(">L", buf[4:8])[0]
            if len(buf) < 8 + size:
                break
            data += buf[8:8 + size]
            buf = buf[8 + size:]
        if until is not None and until in data:
            return data, False
        chunk = s.recv(65536)
        if not chunk:
            return data, True
        buf += chunk
    raise AssertionError(f"timed out; got {data!r}")


def test_detach_keys_are_plain_input_without_a_tty(daemon, sdk, names):
    names.append("att-notty")
    daemon.cli("run", "-d", "-i", "--name", "att-notty", "busybox", "cat")
    s = _attach(daemon, "att-notty")
    try:
        s.sendall(b"a\x10\x11b\n")          # ctrl-p ctrl-q: dockerd's default keys
        data, ended = _read_frames(s, until=b"b\n")
        assert data == b"a\x10\x11b\n" and not ended
    finally:
        s.close()
    state = sdk.api.inspect_container("att-notty")["State"]
    assert state["Running"]


def test_detach_keys_detach_with_a_tty(daemon, sdk, names):
    names.append("att-tty")
    daemon.cli("run", "-d", "-it", "--name", "att-tty", "busybox", "cat")
    since = time.time()
    s = _attach(daemon, "att-tty")
    try:
        s.sendall(b"\x10\x11")
        end = time.monotonic() + 10
        while s.recv(65536):            # the daemon ends the stream on detach
            assert time.monotonic() < end
    finally:
        s.close()

    def actions() -> list[str]:
        r = daemon.cli("events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
                       "--filter", "container=att-tty", "--format", "{{.Action}}")
        return r.stdout.decode().split()
    wait_until(lambda: "detach" in actions(), timeout=10, what="a detach event")
    assert sdk.api.inspect_container("att-tty")["State"]["Running"]


def test_end_of_stdin_ends_the_attach(daemon, names):
    names.append("att-eof")
    daemon.cli("run", "-d", "-i", "--name", "att-eof", "busybox", "cat")
    s = _attach(daemon, "att-eof")
    try:
        s.sendall(b"hello\n")
        _read_frames(s, until=b"hello\n")
        s.shutdown(socket.SHUT_WR)
        _, ended = _read_frames(s)
        assert ended
    finally:
        s.close()
    # the container's stdin stays open: another attach still talks to cat
    s = _attach(daemon, "att-eof")
    try:
        s.sendall(b"again\n")
        _read_frames(s, until=b"again\n")
    finally:
        s.close()


def test_stdin_once_closes_the_container_stdin_and_keeps_the_output(daemon):
    # `docker run -i` (attached) makes a StdinOnce container
    r = daemon.cli("run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done-after-eof",
                   input=b"x\n")
    assert r.stdout == b"x\ndone-after-eof\n"


def test_paused_container_is_refused(daemon, sdk, names):
    names.append("att-paused")
    daemon.cli("run", "-d", "--name", "att-paused", "busybox", "sleep", "300")
    daemon.cli("pause", "att-paused")
    # (the CLI refuses by itself; the SDK asks the daemon)
    with pytest.raises(docker.errors.APIError) as e:
        sdk.api.attach("att-paused", stream=True)
    assert e.value.status_code == 409
    assert e.value.explanation == \
        "container att-paused is paused, unpause the container before attach"
    daemon.cli("unpause", "att-paused")
    wait_until(lambda: sdk.api.inspect_container("att-paused")["State"]["Status"]
               == "running", timeout=10)
