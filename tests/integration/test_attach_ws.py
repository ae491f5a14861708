"""GET /containers/{id}/attach/ws: websocket attach, through a raw RFC 6455 client and
the Docker SDK's attach_socket(ws=True). Expected answers were checked against
dockerd 20.10 (x/net/websocket)."""
from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time


from polling import wait_until

CLOSE_1000 = (8, b"\x03\xe8")


class RawWs:
    """A minimal websocket client over the daemon's unix socket."""

    def __init__(self, sock_path: str, target: str, headers: dict[str, str | None] | None = None
                 ) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(sock_path)
        self.key = base64.b64encode(os.urandom(16)).decode()
        h: dict[str, str | None] = {"Host": "localhost", "Upgrade": "websocket",
                                    "Connection": "Upgrade", "Sec-WebSocket-Key": self.key,
                                    "Sec-WebSocket-Version": "13", **(headers or {})}
        self.sock.sendall((f"GET {target} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in h.items() if v is not None) + "\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            more = self.sock.recv(4096)
            if not more:
                break
            buf += more
        head, _, self.buf = buf.partition(b"\r\n\r\n")
        self.head = head.decode("latin-1")
        self.status = int(self.head.split()[1]) if self.head else 0

    def send(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        key = os.urandom(4)
        n = len(payload)
        head = struct.pack(">BB", (0x80 if fin else 0) | opcode, 0x80 | n) if n < 126 \
            else struct.pack(">BBH", (0x80 if fin else 0) | opcode, 0x80 | 126, n)
        self.sock.sendall(head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload)))

    def _need(self, n: int) -> bytes:
        while len(self.buf) < n:
            more = self.sock.recv(65536)
            if not more:
                raise EOFError
            self.buf += more
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self) -> tuple[int, bytes]:
        b0, b1 = self._need(2)
        assert b0 & 0x80 and not b1 & 0x80, "a server frame is final and unmasked"
        n = b1 & 0x7F
        if n >= 126:
            n = struct.unpack(">H" if n == 126 else ">Q", self._need(2 if n == 126 else 8))[0]
        return b0 & 0x0F, self._need(n)

    def frames_until_close(self, timeout: float = 20) -> list[tuple[int, bytes]]:
        """Every frame up to and including the close frame; then the server's EOF."""
        self.sock.settimeout(timeout)
        out = []
        while True:
            f = self.frame()
            out.append(f)
            if f[0] == 8:
                break
        assert self.sock.recv(1) == b"", "the connection closes after the close frame"
        return out

    def read_data(self, until: bytes, timeout: float = 10) -> bytes:
        deadline = time.monotonic() + timeout
        data = b""
        while until not in data:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            opcode, payload = self.frame()
            assert opcode in (1, 2), (opcode, payload)
            data += payload
        return data

    def close(self) -> None:
        self.sock.close()


def _payloads(frames: list[tuple[int, bytes]]) -> bytes:
    return b"".join(p for op, p in frames if op != 8)


def test_echo_through_cat_binary_frames_ping_and_close(daemon, names):
    names.append("wscat")
    daemon.cli("run", "-d", "-i", "--name", "wscat", "busybox", "cat")
    ws = RawWs(daemon.socket, "/containers/wscat/attach/ws?stream=1&stdin=1&stdout=1",
               {"Origin": "http://elsewhere.example"})    # dockerd checks no Origin
    try:
        assert ws.status == 101, ws.head
        assert "Upgrade: websocket" in ws.head and "Sec-WebSocket-Accept" in ws.head
        ws.send(1, b"text in\n")
        ws.send(2, b"frag", fin=False)
        ws.send(9, b"are you there")
        ws.send(0, b"ments\n")
        frames = []
        while b"fragments\n" not in _payloads(frames):
            frames.append(ws.frame())
        assert (0xA, b"are you there") in frames                   # pong
        # raw bytes in binary frames (API >= 1.28), never stdcopy-multiplexed
        assert {op for op, _ in frames if op != 0xA} == {2}
        assert _payloads([f for f in frames if f[0] == 2]) == b"text in\nfragments\n"
        # the client's close ends this attach (cat is not StdinOnce) and is answered
        ws.send(8, b"\x03\xe8")
        assert ws.frames_until_close() == [CLOSE_1000]
    finally:
        ws.close()
    assert daemon.inspect("wscat")["State"]["Running"]


def test_text_frames_before_api_1_28_and_all_streams_before_1_42(daemon, names):
    names.append("wsold")
    daemon.cli("run", "-d", "-i", "--name", "wsold", "busybox", "cat")
    # API < 1.42 attaches stdin, stdout and stderr whatever the query says
    ws = RawWs(daemon.socket, "/v1.27/containers/wsold/attach/ws?stream=1")
    try:
        assert ws.status == 101
        ws.send(2, b"old client\n")
        assert ws.frame() == (1, b"old client\n")
    finally:
        ws.close()


def test_logs_replay_raw_stdout_and_stderr_then_close_at_exit(daemon, names):
    names.append("wslogs")
    daemon.cli("run", "-d", "--name", "wslogs", "busybox", "sh", "-c",
               "echo out1; echo err1 >&2; while [ ! -e /tmp/go ]; do sleep 0.05; done; "
               "echo out2; echo err2 >&2; exit 3")
    wait_until(lambda: "err1" in daemon.cli("logs", "wslogs").stderr_text, what="err1 logged")
    # only the log: no stream, so the close frame follows it
    ws = RawWs(daemon.socket, "/containers/wslogs/attach/ws?logs=1&stdout=1&stderr=1")
    try:
        frames = ws.frames_until_close()
    finally:
        ws.close()
    assert frames == [(2, b"out1\n"), (2, b"err1\n"), CLOSE_1000]
    ws = RawWs(daemon.socket, "/containers/wslogs/attach/ws?logs=1&stream=1&stdout=1")
    try:
        assert ws.frame() == (2, b"out1\n")          # stderr not asked for (API >= 1.42)
        daemon.cli("exec", "wslogs", "touch", "/tmp/go")
        frames = ws.frames_until_close()              # the container exits: close frame
    finally:
        ws.close()
    assert frames == [(2, b"out2\n"), CLOSE_1000]
    state = wait_until(lambda: (st := daemon.inspect("wslogs")["State"])["Status"] == "exited"
                       and st, what="wslogs exited")
    assert state["ExitCode"] == 3


def test_stdin_once_container_gets_eof_on_close_and_output_continues(daemon, names):
    names.append("wsonce")
    daemon.cli("create", "-i", "--attach", "stdin", "--name", "wsonce", "busybox", "sh", "-c",
               "cat; echo done-$?")
    assert daemon.inspect("wsonce")["Config"]["StdinOnce"]
    ws = RawWs(daemon.socket,
               "/containers/wsonce/attach/ws?stream=1&stdin=1&stdout=1&stderr=1")
    try:
        assert ws.status == 101
        daemon.cli("start", "wsonce")
        ws.send(1, b"abc\n")
        assert ws.read_data(b"abc\n") == b"abc\n"
        ws.send(8, b"\x03\xe8")                        # stdin EOF: cat ends, sh goes on
        frames = ws.frames_until_close()
    finally:
        ws.close()
    assert _payloads(frames) == b"done-0\n" and frames[-1] == CLOSE_1000
    wait_until(lambda: daemon.inspect("wsonce")["State"]["Status"] == "exited",
               what="wsonce exited")


def test_detach_keys_with_a_tty(daemon, names):
    names.append("wstty")
    daemon.cli("run", "-dit", "--name", "wstty", "busybox", "sh")
    since = str(int(time.time()) - 1)
    ws = RawWs(daemon.socket,
               "/containers/wstty/attach/ws?stream=1&stdin=1&stdout=1&detachKeys=ctrl-x")
    try:
        ws.send(1, b"echo hi-$((40+2))\r")
        assert b"hi-42" in ws.read_data(b"hi-42")
        ws.send(1, b"\x18")
        frames = ws.frames_until_close()
    finally:
        ws.close()
    assert frames[-1] == CLOSE_1000
    assert daemon.inspect("wstty")["State"]["Running"]
    events = daemon.out("events", "--since", since, "--until", str(int(time.time()) + 1),
                        "--filter", "container=wstty", "--format", "{{.Action}}").split()
    assert "attach" in events and "detach" in events


def test_detach_keys_pass_through_without_a_tty(daemon, names):
    """dockerd applies detach keys to TTY attaches only: cat gets ctrl-p ctrl-q."""
    names.append("wsnotty")
    daemon.cli("run", "-d", "-i", "--name", "wsnotty", "busybox", "cat")
    ws = RawWs(daemon.socket, "/containers/wsnotty/attach/ws?stream=1&stdin=1&stdout=1")
    try:
        ws.send(2, b"\x10\x11\n")
        assert ws.read_data(b"\n") == b"\x10\x11\n"
    finally:
        ws.close()


def test_refusals(daemon, names):
    names.append("wsref")
    daemon.cli("run", "-d", "-i", "--name", "wsref", "busybox", "cat")
    ws = RawWs(daemon.socket, "/containers/nosuch/attach/ws?stream=1")
    assert ws.status == 404 and "No such container: nosuch" in ws.buf.decode()
    ws.close()
    ws = RawWs(daemon.socket, "/containers/wsref/attach/ws?stream=1&detachKeys=bogus")
    assert ws.status == 400
    body = ws.buf + ws.sock.recv(4096)
    assert json.loads(body)["message"] == "Invalid detach keys (bogus) provided"
    ws.close()
    for headers, text in (({"Upgrade": None, "Connection": None}, "not websocket protocol"),
                          ({"Sec-WebSocket-Version": "8"}, "missing or bad WebSocket Version")):
        ws = RawWs(daemon.socket, "/containers/wsref/attach/ws?stream=1", headers)
        try:
            assert ws.status == 400
            body = ws.buf
            while more := ws.sock.recv(4096):
                body += more
            assert body.decode() == text
        finally:
            ws.close()
    assert daemon.inspect("wsref")["State"]["Running"]


def test_sdk_attach_socket_ws(fresh_daemon):
    """The SDK's websocket attach needs a TCP daemon (it turns http:// into ws://)."""
    import docker
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    d = fresh_daemon("-H", f"tcp://127.0.0.1:{port}", "--tls=false")
    client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{port}", timeout=30)
    try:
        c = client.containers.run("busybox", "cat", stdin_open=True, detach=True)
        ws = client.api.attach_socket(c.id, params={"stdin": 1, "stream": 1}, ws=True)
        try:
            ws.send_binary(b"from sdk\n")
            wait_until(lambda: b"from sdk\n" in c.logs(), what="cat got stdin")
        finally:
            ws.close()
        ws = client.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1},
                                      ws=True)
        try:
            ws.send("typed in a console\n")
            got = b""
            while b"console\n" not in got:
                got += ws.recv()
            assert got == b"typed in a console\n"
        finally:
            ws.close()
        c.remove(force=True)
    finally:
        client.close()
    assert d.proc is not None and d.proc.poll() is None
