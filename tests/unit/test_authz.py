"""api/authz.py without a daemon: what AuthZReq/AuthZRes carry (dockerd's
pkg/authorization), the body limit, and how verdicts and failures become errors."""
from __future__ import annotations

import asyncio
import base64
from types import SimpleNamespace
from typing import Any

import pytest

from pydockerd.api.authz import MAX_BODY, Authorizer, canonical
from pydockerd.api.http import Body, Request, Response, StreamResponse
from pydockerd.errors import Forbidden, SystemError_
from pydockerd.plugins import PluginCallError

COMMON = ["Api-Version: 1.50", "Docker-Experimental: false", "Ostype: linux",
          "Server: Docker/x (linux)"]


class FakeRegistry:
    def __init__(self, answer: Any = None) -> None:
        self.docs: list[tuple[str, dict[str, Any]]] = []
        self.answer = answer or {"Allow": True}

    async def get(self, name: str, kind: str) -> Any:
        assert kind == "authz"

        async def call(method: str, doc: dict[str, Any]) -> dict[str, Any]:
            self.docs.append((method, doc))
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer  # type: ignore[no-any-return]
        return SimpleNamespace(client=SimpleNamespace(call=call))


def _body(data: bytes, piece: int = 4096) -> Body:
    parts = [data[i:i + piece] for i in range(0, len(data), piece)]

    async def pull() -> bytes:
        return parts.pop(0) if parts else b""
    return Body(pull)


def _run(reg: FakeRegistry, method: str, uri: str, headers: dict[str, str], data: bytes,
         resp: Any = None) -> tuple[Any, bytes]:
    async def go() -> tuple[Any, bytes]:
        a = Authorizer(reg)  # type: ignore[arg-type]
        a.names = ("p",)
        ar = a.begin(method, uri.encode(), headers, COMMON, None)
        assert ar is not None
        seen: list[bytes] = []

        async def handler(req: Request) -> Any:
            seen.append(await req.body.read())
            return resp or Response(200, b'{"ok":true}\n')

        def prepare(body: Body) -> Request:
            return Request(method, uri, {}, headers, body, (1, 41))
        out = await ar.run(_body(data), prepare, handler)
        return out, seen[0]
    return asyncio.run(go())


def test_canonical_header_names() -> None:
    assert canonical("x-registry-auth") == "X-Registry-Auth"
    assert canonical("content-TYPE") == "Content-Type"


def test_request_and_response_documents() -> None:
    reg = FakeRegistry()
    body = b'{"Image":"busybox"}'
    _, got = _run(reg, "POST", "/v1.41/containers/create", {
        "host": "docker", "content-type": "application/json", "content-length": str(len(body)),
        "authorization": "secret", "x-registry-auth": "secret", "user-agent": "t"}, body)
    assert got == body
    (m1, req), (m2, res) = reg.docs
    assert (m1, m2) == ("AuthZPlugin.AuthZReq", "AuthZPlugin.AuthZRes")
    assert req == {"RequestMethod": "POST", "RequestUri": "/v1.41/containers/create",
                   "RequestBody": base64.b64encode(body).decode(),
                   "RequestHeaders": {"Content-Type": "application/json",
                                      "Content-Length": str(len(body)), "User-Agent": "t"}}
    assert res["ResponseStatusCode"] == 200
    assert base64.b64decode(res["ResponseBody"]) == b'{"ok":true}\n'
    assert res["ResponseHeaders"] == {"Api-Version": "1.50", "Docker-Experimental": "false",
                                      "Ostype": "linux", "Server": "Docker/x (linux)",
                                      "Content-Type": "application/json"}


@pytest.mark.parametrize("headers,size,sent", [
    ({"content-type": "application/json"}, MAX_BODY - 1, True),
    ({"content-type": "application/json"}, MAX_BODY, False),
    ({"content-type": "application/json; charset=utf-8"}, 10, True),
    ({"content-type": "text/plain"}, 10, False),
    ({"content-type": "application/json", "transfer-encoding": "chunked"}, 10, True),
    ({"content-type": "application/json", "transfer-encoding": "chunked"}, MAX_BODY, False),
])
def test_body_limit_and_types(headers: dict[str, str], size: int, sent: bool) -> None:
    reg = FakeRegistry()
    data = b"x" * size
    h = dict(headers)
    if "transfer-encoding" not in h:
        h["content-length"] = str(size)
    _, got = _run(reg, "POST", "/v1.41/x", h, data)
    assert got == data                      # the handler reads the whole body anyway
    assert ("RequestBody" in reg.docs[0][1]) is sent


def test_auth_bodies_are_never_sent() -> None:
    reg = FakeRegistry()
    _run(reg, "POST", "/v1.41/auth", {"content-type": "application/json",
                                      "content-length": "2"}, b"{}")
    assert "RequestBody" not in reg.docs[0][1]


def test_denial_and_failures() -> None:
    with pytest.raises(Forbidden, match="^authorization denied by plugin p: nope$"):
        _run(FakeRegistry({"Allow": False, "Msg": "nope"}), "GET", "/v1.41/info", {}, b"")
    with pytest.raises(SystemError_, match="^plugin p failed with error: "
                                           "AuthZPlugin.AuthZReq: broke$"):
        _run(FakeRegistry(PluginCallError("AuthZPlugin.AuthZReq: broke")), "GET", "/info",
             {}, b"")


def test_big_buffered_answers_and_streams_show_nothing() -> None:
    reg = FakeRegistry()
    _run(reg, "GET", "/v1.41/containers/json", {}, b"",
         Response(200, b"[" + b" " * (64 << 10) + b"]"))
    assert set(reg.docs[1][1]) == {"RequestMethod", "RequestUri"}

    async def chunks() -> Any:
        yield b'{"a":1}\n'
    reg = FakeRegistry()
    out, _ = _run(reg, "GET", "/v1.41/events", {}, b"", StreamResponse(chunks()))

    async def drain() -> list[bytes]:
        return [c async for c in out.chunks]
    assert asyncio.run(drain()) == [b'{"a":1}\n']
    assert set(reg.docs[1][1]) == {"RequestMethod", "RequestUri"}
