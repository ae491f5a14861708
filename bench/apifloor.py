#!/usr/bin/env python3
"""The floor of one API request on a new unix-socket connection.

    flock /tmp/bench.lock python3 bench/apifloor.py --engines [--n 10000]
    python3 bench/apifloor.py [--n 10000] [--target NAME=SOCKET:PID ...]

Two servers answer `GET /containers/json` with pydockerd's exact bytes for an
empty list, at once and canned: a minimal asyncio Protocol (what any asyncio
daemon pays per connection before it does any work) and a plain blocking
accept/recv/send loop (what Python itself pays). Each runs in a process of its
own; the client is the bench's (run_bench.py's raw HTTP on the unix socket, a
new connection per request). For each server, both engines (--engines: a
pydockerd of this tree and dockerd 20.10, started and torn down as run_bench.py
does, on its fixed paths: hold the bench lock) and each running daemon given
with --target, it prints the median wall time of a request and the server's
CPU per request (utime+stime of its process over the run).  run_bench.py's
`list` case times the asyncio floor beside both engines. A measuring tool only.
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PATH = "/containers/json?all=1"
CANNED = (b"HTTP/1.1 200 OK\r\nApi-Version: 1.50\r\nDocker-Experimental: false\r\n"
          b"Ostype: linux\r\nServer: Docker/28.0.0-pydockerd (linux)\r\n"
          b"Content-Type: application/json\r\nContent-Length: 3\r\n\r\n[]\n")
KINDS = ("asyncio", "blocking")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def get_seconds(sock: str, path: str = PATH) -> float:
    """One GET on a new connection, as run_bench.py's Engine.api_get (raises on failure)."""
    t0 = time.perf_counter()
    c = UnixHTTPConnection(sock)
    c.request("GET", path)
    resp = c.getresponse()
    resp.read()
    c.close()
    if resp.status != 200:
        raise OSError(f"GET {path}: HTTP {resp.status}")
    return time.perf_counter() - t0


# ------------------------------------------------------------------ the servers

class _Canned(asyncio.Protocol):
    """Answers each request head (up to a blank line) with CANNED."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport, self.buf = transport, b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (i := self.buf.find(b"\r\n\r\n")) >= 0:
            self.buf = self.buf[i + 4:]
            self.transport.write(CANNED)


async def _serve_asyncio(path: str) -> None:
    server = await asyncio.get_running_loop().create_unix_server(_Canned, path)
    await server.serve_forever()


def _serve_blocking(path: str) -> None:
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(128)
    while True:
        conn, _ = srv.accept()
        with conn:
            buf = b""
            while data := conn.recv(65536):
                buf += data
                while (i := buf.find(b"\r\n\r\n")) >= 0:
                    buf = buf[i + 4:]
                    conn.sendall(CANNED)


class FloorServer:
    """A canned server (KINDS) in a process of its own, on a socket under /tmp."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.dir = Path(tempfile.mkdtemp(prefix="bench-apifloor-"))
        self.sock = str(self.dir / "floor.sock")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__),
                                      "--serve", kind, self.sock], stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError(f"the {kind} floor server did not start")
            time.sleep(0.01)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for p in (self.sock, self.dir):
            try:
                os.unlink(p) if p == self.sock else os.rmdir(p)
            except OSError:
                pass


# ------------------------------------------------------------------ measuring

def cpu_seconds(pid: int) -> float:
    """utime+stime of a process (its threads included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(targets: dict[str, tuple[str, int]], n: int, rounds: int = 20) -> None:
    """n new-connection GETs per target, in interleaved rounds; prints wall and CPU."""
    wall: dict[str, list[float]] = {t: [] for t in targets}
    cpu: dict[str, float] = dict.fromkeys(targets, 0.0)
    for name, (sock, _) in targets.items():      # warm up
        for _ in range(50):
            get_seconds(sock)
    per = max(1, n // rounds)
    for r in range(rounds):
        order = list(targets.items())
        for name, (sock, pid) in (order if r % 2 == 0 else reversed(order)):
            c0 = cpu_seconds(pid)
            wall[name] += [get_seconds(sock) for _ in range(per)]
            cpu[name] += cpu_seconds(pid) - c0
    print(f"GET {PATH}, a new connection per request, {per * rounds} per server")
    print(f"{'server':>12} {'wall median ms':>15} {'x dockerd':>10} {'server CPU us/req':>18}")
    base = statistics.median(wall["dockerd"]) if "dockerd" in wall else None
    for name in targets:
        w = statistics.median(wall[name])
        ratio = f"{w / base:10.2f}" if base else f"{'':10}"
        print(f"{name:>12} {w * 1000:15.3f} {ratio} {cpu[name] / (per * rounds) * 1e6:18.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10000, help="requests per server")
    ap.add_argument("--engines", action="store_true",
                    help="also start and measure pydockerd (this tree) and dockerd 20.10")
    ap.add_argument("--target", action="append", default=[], metavar="NAME=SOCKET:PID",
                    help="also measure a running daemon (its socket and process id)")
    ap.add_argument("--serve", nargs=2, metavar=("KIND", "SOCKET"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        kind, path = args.serve
        if kind == "asyncio":
            asyncio.run(_serve_asyncio(path))
        else:
            _serve_blocking(path)
        return
    floors: list[FloorServer] = []
    engines: list = []
    if args.engines:
        import run_bench as rb      # (which imports this module: only when wanted)
        watched = rb.watch_host_paths()
        subnets = rb.free_subnets(2)
        engines = [rb.PyDockerd("pydockerd", rb.PYD_BASE, rb.PYD_BRIDGE, subnets[0]),
                   rb.RealDockerd("dockerd", rb.DD_BASE, rb.DD_BRIDGE, subnets[1])]
    try:
        targets = {}
        for e in engines:
            rb.start_engine(e)
            targets[e.name] = (e.sock, e.proc.pid)
        floors = [FloorServer(k) for k in KINDS]
        targets.update({f.kind: (f.sock, f.pid) for f in floors})
        for t in args.target:
            name, _, rest = t.partition("=")
            sock, _, pid = rest.rpartition(":")
            targets[name] = (sock, int(pid))
        measure(targets, args.n)
    finally:
        for f in floors:
            f.close()
        if engines:
            rb.teardown(engines, watched)


if __name__ == "__main__":
    main()
