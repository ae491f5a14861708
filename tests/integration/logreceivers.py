"""Real log receivers for the remote log drivers' tests: rsyslogd and systemd-journald
started with their own config, sockets and files in a temp dir, and in-test GELF and
fluentd receivers that decode the real wire formats."""
from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import threading
import zlib
from pathlib import Path
from typing import Any, Iterator

import msgpack
import pytest

from polling import wait_until


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def make_certs(tmp: Path) -> str:
    """A CA and a server certificate for localhost/127.0.0.1 (srv.pem, srv.key) in
    `tmp`; the CA's path."""
    if (tmp / "srv.pem").exists():
        return str(tmp / "ca.pem")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=pydockerd test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
        "-subj", "/CN=localhost")
    (tmp / "ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext")
    return str(tmp / "ca.pem")


RSYSLOG_TEMPLATE = ("%pri%|%timereported:::date-rfc3339%|%hostname%|%syslogtag%|%app-name%|"
                    "%procid%|%msg%\\n")



def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

class Rsyslog:
    """rsyslogd -n with UDP and TCP inputs on loopback, a unix datagram socket and a
    unix stream socket in `tmp`, writing every message to `tmp/out.log`."""

    def __init__(self, tmp: Path, udp: int = 0, tcp: int = 0, tls_port: int = 0) -> None:
        self.tmp = tmp
        self.udp, self.tcp = udp or free_port(socket.SOCK_DGRAM), tcp or free_port()
        self.dgram, self.stream = str(tmp / "log.sock"), str(tmp / "stream.sock")
        self.out = tmp / "out.log"
        self.tls = tls_port or free_port()
        self.ca = make_certs(tmp)
        conf = tmp / "rsyslog.conf"
        conf.write_text(f"""
global(workDirectory="{tmp}" DefaultNetstreamDriverCAFile="{self.ca}"
       DefaultNetstreamDriverCertFile="{tmp}/srv.pem" DefaultNetstreamDriverKeyFile="{tmp}/srv.key")
module(load="imudp")
module(load="imtcp")
module(load="imptcp")
module(load="imuxsock" SysSock.Use="off")
input(type="imudp" address="127.0.0.1" port="{self.udp}")
input(type="imtcp" address="127.0.0.1" port="{self.tcp}")
input(type="imtcp" address="127.0.0.1" port="{self.tls}" streamDriver.name="gtls"
      streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imptcp" path="{self.stream}")
input(type="imuxsock" Socket="{self.dgram}" IgnoreTimestamp="off" RateLimit.Interval="0"
      UseSpecialParser="off" ParseHostname="off")
template(name="raw" type="string" string="{RSYSLOG_TEMPLATE}")
*.* action(type="omfile" file="{self.out}" template="raw")
""")
        self.proc = subprocess.Popen(["rsyslogd", "-n", "-f", str(conf), "-i",
                                      str(tmp / "rsyslog.pid")],
                                     stdout=subprocess.DEVNULL, stderr=open(tmp / "err", "wb"))
        wait_until(lambda: os.path.exists(self.dgram) and os.path.exists(self.stream)
                   and self._listening(), 15, what="rsyslogd listening")

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.tcp), 1).close()
            return True
        except OSError:
            return False

    def lines(self) -> list[str]:
        try:
            return self.out.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def wait_for(self, needle: str, count: int = 1) -> list[str]:
        return wait_until(lambda: (lambda got: got if len(got) >= count else None)(
            [line for line in self.lines() if needle in line]), 15, what=f"rsyslog: {needle}")

    def stop(self) -> None:
        stop_process(self.proc)


class Journald:
    """systemd-journald in a journal namespace, in a private mount namespace whose
    /run/systemd and /var/log are directories of `tmp` (nothing outside `tmp` is
    created): its socket is `tmp/run/journal.<ns>/socket`, its files under
    `tmp/varlog/journal/`. Inside that mount namespace (`mount_ns`) the default
    journal's paths lead to it too (symlinks): /run/systemd/journal/socket, and the
    files `journalctl` reads without options."""

    def __init__(self, tmp: Path) -> None:
        self.ns = "pydtest"
        run, varlog = tmp / "run", tmp / "varlog"
        logdir = varlog / "journal"          # journald keeps files only if it exists
        run.mkdir()
        logdir.mkdir(parents=True)
        machine = Path("/etc/machine-id").read_text().strip()
        (run / "journal").symlink_to(f"journal.{self.ns}")
        (logdir / machine).symlink_to(f"{machine}.{self.ns}")
        self.socket = str(run / f"journal.{self.ns}" / "socket")
        self.logdir = logdir
        script = (f"mount --make-rprivate / && mount --bind {run} /run/systemd && "
                  f"mount --bind {varlog} /var/log && "
                  f"exec /lib/systemd/systemd-journald {self.ns}")
        self.proc = subprocess.Popen(["unshare", "-m", "sh", "-c", script],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: os.path.exists(self.socket), 15, what="journald socket")

    @property
    def mount_ns(self) -> str:
        return f"/proc/{self.proc.pid}/ns/mnt"

    def directory(self) -> str:
        dirs = [d for d in self.logdir.iterdir() if d.name.endswith("." + self.ns)]
        return str(dirs[0]) if dirs else ""

    def records(self, *matches: str) -> list[dict[str, Any]]:
        if not self.directory():
            return []
        out = subprocess.run(["journalctl", "--no-pager", "--all", "-o", "json", "--directory",
                              self.directory(), *matches], capture_output=True, timeout=30)
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    def stop(self) -> None:
        stop_process(self.proc)


class GelfUdp:
    """Reassembles go-gelf chunks and decompresses (gzip, zlib or none by magic)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.port = int(self.sock.getsockname()[1])

    def receive(self) -> tuple[dict[str, Any], int]:
        """The next whole message and how many datagrams it came in."""
        parts: dict[bytes, dict[int, bytes]] = {}
        while True:
            data = self.sock.recv(65536)
            if data[:2] != b"\x1e\x0f":
                return json.loads(self._decompress(data)), 1
            mid, seq, count = data[2:10], data[10], data[11]
            assert count <= 128 and seq < count
            got = parts.setdefault(mid, {})
            got[seq] = data[12:]
            if len(got) == count:
                whole = b"".join(got[i] for i in range(count))
                return json.loads(self._decompress(whole)), count

    @staticmethod
    def _decompress(data: bytes) -> bytes:
        if data[:2] == b"\x1f\x8b":
            return gzip.decompress(data)
        if data[:1] == b"\x78":
            return zlib.decompress(data)
        return data

    def close(self) -> None:
        self.sock.close()


class StreamServer:
    """A TCP (or unix) server in a thread: `handler(conn)` per connection; `stall`
    accepts and never reads."""

    def __init__(self, handler: Any = None, path: str | None = None,
                 port: int = 0) -> None:
        if path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(path)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", port))
            self.port = int(self.sock.getsockname()[1])
        self.sock.listen(16)
        self.handler = handler
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.handler is not None:
                threading.Thread(target=self.handler, args=(conn,), daemon=True).start()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            c.close()


class Fluentd(StreamServer):
    """Decodes forward-protocol messages; answers `chunk` options with an ack."""

    def __init__(self, path: str | None = None, port: int = 0) -> None:
        self.messages: list[list[Any]] = []
        super().__init__(self._handle, path, port)

    def _handle(self, conn: socket.socket) -> None:
        unpacker = msgpack.Unpacker(raw=False, ext_hook=lambda code, data: (code, data))
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            unpacker.feed(data)
            for msg in unpacker:
                self.messages.append(msg)
                option = msg[3] if len(msg) > 3 else {}
                if option.get("chunk"):
                    conn.sendall(msgpack.packb({"ack": option["chunk"]}))


class Valve(StreamServer):
    """A stream receiver that reads nothing until `open()`, then reads everything and
    keeps it (`data()`): an endpoint that stalls, then recovers."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self._chunks: list[bytes] = []
        super().__init__(self._handle)

    def open(self) -> None:
        self.opened.set()

    def data(self) -> bytes:
        return b"".join(list(self._chunks))

    def close(self) -> None:
        self.opened.set()
        super().close()

    def _handle(self, conn: socket.socket) -> None:
        self.opened.wait()
        while True:
            try:
                data = conn.recv(1 << 20)
            except OSError:
                return
            if not data:
                return
            self._chunks.append(data)


class GelfTcp(StreamServer):
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        super().__init__(self._handle)

    def _handle(self, conn: socket.socket) -> None:
        buf = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            *done, buf = buf.split(b"\0")
            self.messages.extend(json.loads(d) for d in done)


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[Rsyslog]:
    r = Rsyslog(tmp_path)
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journald]:
    j = Journald(tmp_path)
    try:
        yield j
    finally:
        j.stop()
