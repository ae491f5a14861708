"""Authorization plugins (`--authorization-plugin`), as dockerd's pkg/authorization.

Every routed request is shown to each plugin in turn (`AuthZPlugin.AuthZReq`) before its
handler runs, and the response after it (`AuthZPlugin.AuthZRes`); the first plugin that
does not allow it makes the answer a 403 `authorization denied by plugin <name>: <msg>`.
A plugin that fails (down after the retries, a non-200 answer, garbage) is a 500 `plugin
<name> failed with error: ...`: requests fail closed. What AuthZRes sees follows dockerd's
ResponseModifier: a buffered answer with its status, headers and (JSON) body; after a
handler error only the common headers, and its verdict is ignored (the error is the
answer); a stream is flushed as it goes, so nothing; a hijacked connection only the
common headers, and a denial can no longer reach the client.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import DockerError, Forbidden, SystemError_
from ..plugins import PluginRegistry
from ..util.tasks import TaskOwner
from .http import AnyResponse, Body, Handler, HijackHandler, Request, Response, \
    StreamResponse

if TYPE_CHECKING:
    import ssl

log = logging.getLogger("pydockerd.api")

KIND = "authz"                      # the Implements entry (AuthZApiImplements)
MAX_BODY = 1 << 20                  # maxBodySize: bodies of 1 MiB and more are not sent
MAX_BUFFER = 64 << 10               # responseModifier.maxBufferSize: bigger ones flush
_HIDDEN = ("authorization", "x-registry-config", "x-registry-auth")


def canonical(name: str) -> str:
    """Go's CanonicalMIMEHeaderKey: `api-version` -> `Api-Version`."""
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


def _headers(items: Sequence[tuple[str, str]]) -> dict[str, str]:
    """dockerd's headers(): flattened (last value wins), credentials left out."""
    return {canonical(k): v for k, v in items if k.lower() not in _HIDDEN}


def _send_body(uri: str, content_type: str | None) -> bool:
    """dockerd's sendBody: JSON bodies only, never those of /auth."""
    if uri.split("?", 1)[0].endswith("/auth") or not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode() if data else None


def tls_user(sslobj: ssl.SSLObject | None) -> tuple[str, str, list[str]]:
    """(User, UserAuthNMethod, RequestPeerCertificates) from the TLS client certificate:
    its subject's common name and "TLS", as dockerd; nothing without one."""
    if sslobj is None:
        return "", "", []
    cert = sslobj.getpeercert()
    der = sslobj.getpeercert(binary_form=True)
    if not cert or not der:
        return "", "", []
    cn = ""
    for rdn in cert.get("subject", ()):
        for pair in rdn:
            if pair[0] == "commonName":
                cn = str(pair[1])
    return cn, "TLS", [base64.b64encode(der).decode()]


class Authorizer:
    """The configured plugin chain; `set_plugins` activates them first (dockerd's
    validateAuthzPlugins), so a start-up or reload with a missing plugin fails."""

    def __init__(self, registry: PluginRegistry,
                 on_disable: list[Callable[[str], None]] | None = None) -> None:
        """on_disable: the managed plugins' hooks for a plugin being disabled."""
        self.registry = registry
        if on_disable is not None:
            on_disable.append(self.remove_plugin)
        self.names: tuple[str, ...] = ()
        self.late = TaskOwner("authz responses")    # AuthZRes of streams the client left

    async def set_plugins(self, names: Sequence[str]) -> None:
        """The chain, each plugin under the name its registry gives it (a managed
        plugin's is `name:tag`, as dockerd names it once found)."""
        resolved = [(await self.registry.get(name, KIND)).name for name in names]
        self.names = tuple(resolved)

    def remove_plugin(self, name: str) -> None:
        """A managed authz plugin being disabled leaves the chain (dockerd's
        AuthzMiddleware.RemovePlugin); enabling it again does not bring it back."""
        if name in self.names:
            log.info("authorization plugin %s disabled: removed from the chain", name)
            self.names = tuple(n for n in self.names if n != name)

    def begin(self, method: str, uri: bytes, headers: dict[str, str], common: list[str],
              sslobj: ssl.SSLObject | None) -> "AuthzRequest | None":
        """The authorization of one request (None while no plugin is configured).
        `common` are the headers every answer carries ("Name: value")."""
        if not self.names:
            return None
        user, how, certs = tls_user(sslobj)
        pairs = [h.split(": ", 1) for h in common]
        return AuthzRequest(self, method, uri.decode("latin-1"), headers, user, how, certs,
                            _headers([(p[0], p[1]) for p in pairs]))


@dataclass
class AuthzRequest:
    authz: Authorizer
    method: str
    uri: str
    headers: dict[str, str]
    user: str
    authn: str
    certs: list[str]
    common: dict[str, str]
    body: bytes | None = None
    doc: dict[str, Any] = field(default_factory=dict)

    async def _ask(self, phase: str, doc: dict[str, Any]) -> None:
        names = self.authz.names
        for name in names:
            try:
                plugin = await self.authz.registry.get(name, KIND)
                answer = await plugin.client.call(f"AuthZPlugin.{phase}", doc)
            except DockerError as e:
                raise SystemError_(f"plugin {name} failed with error: {e.message}") \
                    from None
            if answer.get("Allow") is not True:
                msg = answer.get("Msg")
                raise Forbidden(f"authorization denied by plugin {name}: "
                                f"{msg if isinstance(msg, str) else ''}")

    async def run(self, body: Body, prepare: Callable[[Body], Request],
                  handler: Handler) -> AnyResponse:
        """The authorized request: AuthZReq, the handler, AuthZRes. `prepare` makes the
        Request (API version negotiation: dockerd's version middleware runs inside the
        authorization one, before the experimental one sets its header)."""
        body = await self.request(body)
        try:
            req = prepare(body)
        except Exception:
            await self.after_error({k: v for k, v in self.common.items()
                                    if k != "Docker-Experimental"})
            raise
        try:
            resp = await handler(req)
        except Exception:
            await self.after_error(self.common)
            raise
        return await self.response(resp)

    async def request(self, body: Body) -> Body:
        """AuthZReq; the body the handler then reads (what was read for the plugin
        first, then the rest)."""
        length = self.headers.get("content-length", "")
        size = int(length) if length.isdigit() else -1
        chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        it = body.chunks().__aiter__()
        pending: deque[bytes] = deque()
        if _send_body(self.uri, self.headers.get("content-type")) and \
                (size > 0 or chunked) and size < MAX_BODY:
            got = 0
            async for chunk in it:
                pending.append(chunk)
                got += len(chunk)
                if got >= MAX_BODY:
                    break
            if got < MAX_BODY:
                self.body = b"".join(pending)
            else:
                log.warning("Request body is larger than: '%d' skipping body", MAX_BODY)
        self.doc = {k: v for k, v in {
            "User": self.user, "UserAuthNMethod": self.authn,
            "RequestMethod": self.method, "RequestUri": self.uri,
            "RequestBody": _b64(self.body),
            "RequestHeaders": _headers([(k, v) for k, v in self.headers.items()
                                        if k not in ("host", "transfer-encoding")]),
            "RequestPeerCertificates": self.certs}.items() if v}
        await self._ask("AuthZReq", self.doc)

        async def pull() -> bytes:
            if pending:
                return pending.popleft()
            try:
                return await it.__anext__()
            except StopAsyncIteration:
                return b""
        return Body(pull)

    async def _response(self, status: int, headers: dict[str, str],
                        body: bytes | None) -> None:
        doc = dict(self.doc)
        if status:
            doc["ResponseStatusCode"] = status
        if headers:
            doc["ResponseHeaders"] = headers
        if body and _send_body(self.uri, headers.get("Content-Type")):
            doc["ResponseBody"] = _b64(body)
        await self._ask("AuthZRes", doc)

    async def after_error(self, common: dict[str, str]) -> None:
        """AuthZRes whose verdict does not matter: after a handler error (dockerd answers
        with the handler's error), a hijack or a stream the client left."""
        try:
            await self._response(0, common, None)
        except DockerError as e:
            log.error("AuthZResponse for %s %s returned error: %s", self.method, self.uri,
                      e.message)

    async def response(self, resp: AnyResponse) -> AnyResponse:
        """AuthZRes of a buffered answer now; a stream's and a hijack's once they end."""
        if isinstance(resp, Response):
            headers = dict(self.common)
            if resp.content_type:
                headers["Content-Type"] = resp.content_type
            headers.update(_headers(list(resp.headers.items())))
            if len(resp.body) > MAX_BUFFER:   # flushed before it is buffered: Go's Write
                await self._response(0, {}, None)
            else:
                await self._response(resp.status, headers, resp.body)
            return resp
        if isinstance(resp, StreamResponse):
            return replace(resp, chunks=self._stream(resp.chunks))
        return replace(resp, handler=self._hijacked(resp.handler))

    async def _stream(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Each item is flushed to the client as it comes (dockerd's WriteFlusher): at
        the end AuthZRes sees nothing, and a denial is appended to what was sent."""
        started = False
        try:
            async for chunk in chunks:
                started = True
                yield chunk
        except Exception:
            if not started:
                await self.after_error(self.common)
            raise
        except (GeneratorExit, asyncio.CancelledError):
            # the client left (or the daemon stops): dockerd tells the plugins all the same
            if not self.authz.late.closed:
                self.authz.late.spawn(self.after_error({}), name="authz response")
            raise
        finally:
            if isinstance(chunks, AsyncGenerator):
                await chunks.aclose()
        try:
            await self._response(0, {}, None)
        except DockerError as e:
            yield (json.dumps({"message": e.message}, separators=(",", ":")) + "\n").encode()

    def _hijacked(self, handler: HijackHandler) -> HijackHandler:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await handler(reader, writer)
            finally:
                # the connection is the handler's: a denial cannot reach the client
                await asyncio.shield(self.after_error(self.common))
        return run


__all__ = ["Authorizer", "AuthzRequest", "MAX_BODY", "canonical"]
