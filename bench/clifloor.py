"""The docker CLI's own floor: `docker ps` against a server that answers at once.

A `docker ps` with no container costs the daemon well under a millisecond; the
rest of the ~9 ms is the CLI process itself (start-up, config, the `HEAD /_ping`
and `GET /containers/json` round trips).  This stub answers those two requests
at once, with `[]` or a list recorded from a real engine, so timing `docker ps`
against it gives the lowest time any daemon can reach, and hence the lowest
reachable ratio against dockerd.  It is a measuring tool only: nothing but the bench uses it.
"""
from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path


class CliFloorStub:
    """A unix-socket HTTP/1.1 server answering `/_ping`, and `body` for anything else
    (`[]`, or a container list recorded from a real engine)."""

    def __init__(self, body: bytes = b"[]\n", api_version: str = "1.41") -> None:
        self.body = body
        self.dir = Path(tempfile.mkdtemp(prefix="bench-clifloor-"))
        self.path = self.dir / "stub.sock"
        self.api_version = api_version
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(self.path))
        self.sock.listen(64)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        headers = (f"Api-Version: {self.api_version}\r\nOstype: linux\r\n"
                   "Docker-Experimental: false\r\nServer: Docker/stub (linux)\r\n").encode()
        buf = b""
        with conn:
            while data := conn.recv(65536):
                buf += data
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    line = head.split(b"\r\n", 1)[0]
                    ping = b" /_ping " in line
                    body = b"OK" if ping else self.body
                    ctype = b"text/plain; charset=utf-8" if ping else b"application/json"
                    out = (b"HTTP/1.1 200 OK\r\n" + headers + b"Content-Type: " + ctype
                           + b"\r\nContent-Length: %d\r\n\r\n" % len(body))
                    conn.sendall(out if line.startswith(b"HEAD ") else out + body)

    def timed_ps(self, cli: str, env: dict[str, str]) -> float | None:
        """Seconds one `docker ps` against the stub took (None if it failed)."""
        env = dict(env, DOCKER_HOST=f"unix://{self.path}")
        t0 = time.perf_counter()
        r = subprocess.run([cli, "ps"], capture_output=True, env=env, timeout=60,
                           stdin=subprocess.DEVNULL)
        return time.perf_counter() - t0 if r.returncode == 0 else None

    def close(self) -> None:
        self.sock.close()
        try:
            os.unlink(self.path)
            os.rmdir(self.dir)
        except OSError:
            pass
