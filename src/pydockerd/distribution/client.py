"""A small registry HTTP API v2 client (on util/httpclient): ping, auth (Basic, Bearer
tokens), typed registry errors. One RegistrySession per endpoint and operation."""
from __future__ import annotations

import asyncio
import json
import os
import logging
from typing import Callable, Mapping
from urllib.parse import urlencode, urlsplit

from .auth import AuthConfig, Challenge, parse_challenges
from .endpoints import Endpoint
from ..util.httpclient import (Body, ConnectError, HTTPClient, HTTPError, PayloadError,
                               Response, ResponseTimeout, ServerDisconnected, Timeouts,
                               basic_auth)

log = logging.getLogger("pydockerd.distribution")
SMALL_BODY = 1 << 20       # what is read of an error, ping or token response body


class RegistryError(Exception):
    """An error the registry answered with ({"errors": [{code, message}]})."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(str(self))

    def __str__(self) -> str:
        code = self.code.lower().replace("_", " ") if self.code else f"status {self.status}"
        return f"{code}: {self.message}" if self.message else code


class TransportError(Exception):
    """The registry could not be reached, the connection broke, or it went silent."""


class UnexpectedStatus(RegistryError):
    """A 5xx answer: dockerd (distribution's HandleErrorResponse) does not read its
    body and reports the status line."""

    def __init__(self, status: int, reason: str) -> None:
        self.status_line = f"{status} {reason}".strip()
        super().__init__(status, "UNKNOWN", f"received unexpected HTTP status: "
                                            f"{self.status_line}")

    def __str__(self) -> str:
        return self.message


def _status_code(status: int) -> str:
    return {401: "UNAUTHORIZED", 403: "DENIED", 404: "NOT_FOUND",
            429: "TOOMANYREQUESTS"}.get(status, "UNKNOWN")


CONNECT_TIMEOUT = 15.0
PING_TIMEOUT = 15.0        # dockerd's whole-request limit for GET /v2/
STALL_TIMEOUT = 30.0


def stall_timeout() -> float:
    """Seconds a registry may stay silent (no response headers, or no body byte)
    before the request fails: STALL_TIMEOUT, or PYDOCKERD_REGISTRY_TIMEOUT
    (dockerd has no such setting; the tests shorten it)."""
    try:
        value = float(os.environ.get("PYDOCKERD_REGISTRY_TIMEOUT", ""))
    except ValueError:
        return STALL_TIMEOUT
    return value if value > 0 else STALL_TIMEOUT


def _timeouts() -> Timeouts:
    """Connect (TCP + TLS handshake, never longer than the inactivity timeout) and
    inactivity timeouts; no total, so a big blob may take as long as it needs
    while bytes keep coming."""
    stall = stall_timeout()
    return Timeouts(connect=min(CONNECT_TIMEOUT, stall), read=stall)


async def registry_error(resp: Response) -> RegistryError:
    """Turn an unexpected response into a RegistryError (reads the body of a 4xx)."""
    if resp.status >= 500:
        resp.release()
        return UnexpectedStatus(resp.status, resp.reason or "")
    try:
        body = await resp.read(SMALL_BODY)
        doc = json.loads(body) if body else {}
        errs = doc.get("errors") if isinstance(doc, dict) else None
        if errs and isinstance(errs[0], dict):
            e = errs[0]
            return RegistryError(resp.status, str(e.get("code") or ""),
                                 str(e.get("message") or ""))
        if isinstance(doc, dict) and doc.get("details"):
            return RegistryError(resp.status, _status_code(resp.status), str(doc["details"]))
    except (ValueError, HTTPError):
        pass
    msg = {401: "authentication required", 403: "requested access to the resource is denied",
           404: "not found"}.get(resp.status, f"unexpected status {resp.status} "
                                              f"{resp.reason or ''}".strip())
    return RegistryError(resp.status, _status_code(resp.status), msg)


def describe(method: str, url: str, e: BaseException, body: bool = False) -> str:
    """Go's wording of a failed request (`Get "url": reason`); body: the response
    headers had arrived, reading the body failed."""
    if isinstance(e, ResponseTimeout) and e.stage == "connect":
        reason = f"dial tcp {urlsplit(url).netloc}: i/o timeout"
    elif isinstance(e, (ResponseTimeout, asyncio.TimeoutError)):   # Go's net/http wording
        reason = "read: i/o timeout" if body else "net/http: timeout awaiting response headers"
    elif isinstance(e, ConnectError):
        reason = str(e)
    elif isinstance(e, ServerDisconnected):
        reason = "server disconnected"
    elif isinstance(e, (PayloadError, ConnectionResetError)):
        reason = "connection reset by peer" if "reset" in str(e).lower() else \
            f"unexpected EOF ({e})"
    else:
        reason = str(e) or type(e).__name__
    return f'{method.capitalize() if method != "HEAD" else "Head"} "{url}": {reason}'


class RegistrySession:
    def __init__(self, endpoint: Endpoint, auth: AuthConfig, scopes: list[str]) -> None:
        self.endpoint = endpoint
        self.auth = auth
        self.scopes = list(scopes)
        self.challenges: list[Challenge] = []
        self._token: str | None = None
        self.http = HTTPClient(tls=endpoint.tls, timeouts=_timeouts())
        self._owners = 1            # the opener (until its close()) and each hold()
        self._opener_done = False

    def hold(self) -> Callable[[], None]:
        """One more owner: a layer's making, which may outlive the pull that opened
        the session. Its connections close once the opener has closed it and every
        holder has let go (the function returned lets go, once)."""
        self._owners += 1
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self._let_go()
        return release

    async def close(self) -> None:
        """The opener is done with the session (again: nothing more)."""
        if not self._opener_done:
            self._opener_done = True
            self._let_go()

    def _let_go(self) -> None:
        self._owners -= 1
        if self._owners == 0:
            self.http.close_now()

    @property
    def closed(self) -> bool:
        return self.http.closed

    async def __aenter__(self) -> RegistrySession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- transport --------------------------------------------------------------------
    async def _send(self, method: str, url: str, headers: Mapping[str, str], data: Body,
                    allow_redirects: bool, timeouts: Timeouts | None = None) -> Response:
        try:
            return await self.http.request(method, url, headers=headers, data=data,
                                           allow_redirects=allow_redirects, timeouts=timeouts)
        except (HTTPError, OSError) as e:
            raise TransportError(describe(method, url, e)) from None

    async def ping(self) -> None:
        """GET /v2/: learn the auth challenge (raises TransportError if unreachable)."""
        url = self.endpoint.url("/v2/")
        limit = min(PING_TIMEOUT, stall_timeout())
        resp = await self._send("GET", url, {}, None, True,
                                Timeouts(connect=limit, total=limit))
        async with resp:
            try:
                await resp.read(SMALL_BODY)
            except HTTPError as e:
                raise TransportError(describe("GET", url, e, body=True)) from None
            if resp.status == 401:
                self.challenges = parse_challenges(resp.headers.getall("WWW-Authenticate"))
            elif resp.status >= 500 or resp.status not in (200, 401):
                raise TransportError(f'Get "{url}": unexpected status {resp.status}')

    def add_scope(self, scope: str) -> None:
        if scope not in self.scopes:
            self.scopes.append(scope)
            if self._challenge("bearer"):
                self._token = None

    # --- auth -------------------------------------------------------------------------
    def _challenge(self, scheme: str) -> Challenge | None:
        return next((c for c in self.challenges if c.scheme == scheme), None)

    async def _auth_header(self) -> dict[str, str]:
        if self._challenge("bearer"):
            if self._token is None:
                self._token = await self.fetch_token(self.scopes)
            return {"Authorization": f"Bearer {self._token}"} if self._token else {}
        if self._challenge("basic") and self.auth.has_basic:
            return {"Authorization": basic_auth(self.auth.username, self.auth.password)}
        return {}

    async def fetch_token(self, scopes: list[str]) -> str:
        if self.auth.registry_token:
            return self.auth.registry_token
        ch = self._challenge("bearer")
        assert ch is not None
        realm = ch.params.get("realm", "")
        if not realm:
            raise RegistryError(401, "UNAUTHORIZED", "token auth challenge without realm")
        params: list[tuple[str, str]] = []
        if ch.params.get("service"):
            params.append(("service", ch.params["service"]))
        for s in scopes:
            params.append(("scope", s))
        if self.auth.identity_token:
            form = dict(params, grant_type="refresh_token", client_id="docker",
                        refresh_token=self.auth.identity_token)
            resp = await self._send("POST", realm, {
                "Content-Type": "application/x-www-form-urlencoded"},
                urlencode(form).encode(), True)
        else:
            if self.auth.username:
                params.append(("account", self.auth.username))
            headers = {}
            if self.auth.has_basic:
                headers["Authorization"] = basic_auth(self.auth.username, self.auth.password)
            sep = "&" if "?" in realm else "?"
            resp = await self._send("GET", f"{realm}{sep}{urlencode(params)}", headers, None,
                                    True)
        async with resp:
            if resp.status != 200:
                err = await registry_error(resp)
                if resp.status == 401:
                    err = RegistryError(401, "UNAUTHORIZED",
                                        "incorrect username or password"
                                        if self.auth.has_basic else "authentication required")
                raise err
            try:
                doc = json.loads(await resp.read(SMALL_BODY))
            except HTTPError as e:
                raise TransportError(describe("GET", realm, e, body=True)) from None
            except ValueError:
                raise RegistryError(resp.status, "UNKNOWN",
                                    "invalid token response from auth server") from None
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(401, "UNAUTHORIZED", "auth server returned no token")
        return token

    # --- requests ---------------------------------------------------------------------
    async def request(self, method: str, path_or_url: str, *,
                      headers: Mapping[str, str] | None = None, data: Body = None,
                      allow_redirects: bool = True) -> Response:
        """Send with credentials; on 401 (bodies that can be resent only) learn the new
        challenge and retry once. The caller closes the response."""
        url = path_or_url if "://" in path_or_url else self.endpoint.url(path_or_url)
        for attempt in (0, 1):
            h = dict(headers or {})
            h.update(await self._auth_header())
            resp = await self._send(method, url, h, data, allow_redirects)
            if resp.status != 401 or attempt or not (data is None or isinstance(data, bytes)):
                return resp
            new = parse_challenges(resp.headers.getall("WWW-Authenticate"))
            resp.release()
            if not new:
                return await self._send(method, url, h, data, allow_redirects)
            self.challenges = new
            scope = next((c.params.get("scope") for c in new if c.params.get("scope")), None)
            if scope and scope not in self.scopes:
                self.scopes.append(scope)
            self._token = None
        raise AssertionError("unreachable")
