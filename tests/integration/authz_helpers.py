"""A legacy authorization plugin written for the tests: it speaks the real protocol
(POST /Plugin.Activate, /AuthZPlugin.AuthZReq, /AuthZPlugin.AuthZRes) over a unix socket,
records every request it is asked about, and answers by rule: a request whose method and
URI match a deny rule of its phase is refused with a message; `answer` can replace every
answer (an `Err`, garbage) to play a broken plugin."""
from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from plugin_helpers import VolumePlugin


@dataclass
class Rule:
    method: str                 # "" matches any method
    uri: str                    # a regular expression searched in the request URI
    msg: str = "denied by test rule"

    def matches(self, req: dict[str, Any]) -> bool:
        return (not self.method or req.get("RequestMethod") == self.method) and \
            re.search(self.uri, req.get("RequestUri") or req.get("RequestURI") or "") \
            is not None


@dataclass
class AuthzCall:
    phase: str                  # "AuthZReq" | "AuthZRes"
    req: dict[str, Any]

    @property
    def uri(self) -> str:
        return str(self.req.get("RequestUri") or self.req.get("RequestURI") or "")

    def body(self, key: str = "RequestBody") -> bytes | None:
        """A []byte field (base64 in Go's JSON), decoded."""
        raw = self.req.get(key)
        return None if raw is None else base64.b64decode(raw)


@dataclass
class _Answer:
    status: int
    raw: bytes


class AuthzPlugin(VolumePlugin):
    """start()/stop() as VolumePlugin (stop leaves the socket file: connections are then
    refused, as with a crashed plugin)."""

    def __init__(self, root: str, socket_path: str) -> None:
        super().__init__(root, socket_path, implements=("authz",))
        self.deny_req: list[Rule] = []
        self.deny_res: list[Rule] = []
        self.answer: _Answer | None = None
        self.seen: list[AuthzCall] = []
        self._seen_lock = threading.Lock()

    def fail_with(self, status: int, raw: bytes) -> None:
        """Answer every AuthZ call with this status and raw body from now on."""
        self.answer = _Answer(status, raw)

    def decide(self, phase: str, req: dict[str, Any]) -> tuple[int, bytes]:
        with self._seen_lock:
            self.seen.append(AuthzCall(phase, req))
        if self.answer is not None:
            return self.answer.status, self.answer.raw
        rules = self.deny_req if phase == "AuthZReq" else self.deny_res
        for r in rules:
            if r.matches(req):
                return 200, json.dumps({"Allow": False, "Msg": r.msg}).encode()
        return 200, json.dumps({"Allow": True}).encode()

    def asked(self, phase: str, method: str = "", uri: str = "") -> list[AuthzCall]:
        with self._seen_lock:
            seen = list(self.seen)
        return [c for c in seen if c.phase == phase and
                (not method or c.req.get("RequestMethod") == method) and
                re.search(uri, c.uri) is not None]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        plugin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                method = self.path.lstrip("/")
                if method == "Plugin.Activate":
                    status, data = 200, json.dumps({"Implements": ["authz"]}).encode()
                elif method in ("AuthZPlugin.AuthZReq", "AuthZPlugin.AuthZRes"):
                    status, data = plugin.decide(method.split(".")[1], json.loads(raw))
                else:
                    status, data = 404, json.dumps({"Err": f"unknown method {method}"}
                                                   ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.docker.plugins.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass
        return Handler


__all__ = ["AuthzCall", "AuthzPlugin", "Rule"]
