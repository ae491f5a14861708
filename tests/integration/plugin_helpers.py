"""A legacy ("v1") Docker volume plugin written for the tests: it speaks the real
protocol (POST /Plugin.Activate, /VolumeDriver.*) over a unix socket or TCP, keeps each
volume as a directory under its own root, counts mounts by mount ID as real plugins do,
and records every call (method, body, headers) for the tests to check."""
from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Call:
    method: str
    body: Any
    headers: dict[str, str]


@dataclass
class VolumeState:
    opts: dict[str, str] | None
    mounts: set[str] = field(default_factory=set)


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):  # BaseHTTPRequestHandler wants a (host, port) client address
        conn, _ = self.socket.accept()
        return conn, ("plugin-client", 0)


class VolumePlugin:
    """Start with start(); stop() closes the listener (the socket file stays, so a client
    sees "connection refused", as with a crashed plugin); start() again to come back."""

    def __init__(self, root: str, socket_path: str | None = None,
                 tcp: tuple[str, int] | None = None, scope: str | None = "local",
                 implements: tuple[str, ...] = ("VolumeDriver",)) -> None:
        self.root = root
        self.socket_path = socket_path
        self.tcp = tcp
        self.scope = scope
        self.implements = list(implements)
        self.calls: list[Call] = []
        self.volumes: dict[str, VolumeState] = {}
        self.lock = threading.Lock()
        self.server: socketserver.BaseServer | None = None
        self.thread: threading.Thread | None = None
        self.connections: set[socket.socket] = set()      # open (keep-alive) clients
        os.makedirs(root, exist_ok=True)

    # ---- the protocol ------------------------------------------------------------

    def path_of(self, name: str) -> str:
        return os.path.join(self.root, name)

    def handle(self, method: str, body: Any) -> tuple[int, dict[str, Any]]:
        if method == "Plugin.Activate":
            return 200, {"Implements": self.implements}
        if not method.startswith("VolumeDriver.") or "VolumeDriver" not in self.implements:
            return 404, {"Err": f"unknown method {method}"}
        verb = method.split(".", 1)[1]
        name = (body or {}).get("Name", "")
        with self.lock:
            vol = self.volumes.get(name)
            if verb == "Create":
                if (body.get("Opts") or {}).get("fail"):
                    return 500, {"Err": f"refusing to create {name}"}
                os.makedirs(self.path_of(name), exist_ok=True)
                self.volumes.setdefault(name, VolumeState(body.get("Opts")))
                return 200, {"Err": ""}
            if verb == "List":
                return 200, {"Volumes": [{"Name": n, "Mountpoint": self.path_of(n)}
                                         for n in sorted(self.volumes)], "Err": ""}
            if verb == "Capabilities":
                return 200, ({"Capabilities": {"Scope": self.scope}} if self.scope
                             else {})
            if vol is None:
                return 500, {"Err": f"no such volume: {name}"}
            if verb == "Get":
                return 200, {"Volume": {"Name": name, "Mountpoint": self.path_of(name),
                                        "Status": {"mounts": len(vol.mounts)}}, "Err": ""}
            if verb == "Path":
                return 200, {"Mountpoint": self.path_of(name), "Err": ""}
            if verb == "Mount":
                vol.mounts.add(body["ID"])
                return 200, {"Mountpoint": self.path_of(name), "Err": ""}
            if verb == "Unmount":
                vol.mounts.discard(body["ID"])
                return 200, {"Err": ""}
            if verb == "Remove":
                if vol.mounts:
                    return 500, {"Err": f"volume {name} is still mounted"}
                os.rename(self.path_of(name), self.path_of(name) + ".removed")
                del self.volumes[name]
                return 200, {"Err": ""}
        return 404, {"Err": f"unknown method {method}"}

    def calls_of(self, method: str, name: str | None = None) -> list[Call]:
        return [c for c in list(self.calls) if c.method == method and
                (name is None or (c.body or {}).get("Name") == name)]

    # ---- the server --------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        plugin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                plugin.connections.add(self.connection)

            def finish(self) -> None:
                plugin.connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                body = json.loads(raw) if raw.strip() else None
                method = self.path.lstrip("/")
                plugin.calls.append(Call(method, body, dict(self.headers.items())))
                status, doc = plugin.handle(method, body)
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.docker.plugins.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass
        return Handler

    def bind(self) -> None:
        """Bind without listening: connections are refused until listen()."""
        if self.socket_path:
            if os.path.exists(self.socket_path):
                os.unlink(self.socket_path)
            os.makedirs(os.path.dirname(self.socket_path), exist_ok=True)
            self.server = _UnixHTTPServer(self.socket_path, self._handler(),
                                          bind_and_activate=False)
        else:
            assert self.tcp is not None
            self.server = ThreadingHTTPServer(self.tcp, self._handler(),
                                              bind_and_activate=False)
            self.server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.server_bind()

    def listen(self) -> None:
        assert self.server is not None
        self.server.server_activate()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def start(self) -> "VolumePlugin":
        self.bind()
        self.listen()
        return self

    def stop(self) -> None:
        if self.server is not None:
            if self.thread is not None:
                self.server.shutdown()
            self.server.server_close()
            self.server = None
        for conn in list(self.connections):         # a dead plugin drops its clients
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.thread = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
