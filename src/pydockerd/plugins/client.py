"""The legacy plugin protocol's HTTP client, as dockerd's pkg/plugins/client.go.

Every call is `POST /<Method>` with a JSON body (none for Plugin.Activate) and
`Accept`/`Content-Type: application/vnd.docker.plugins.v1.2+json`; a 200 answer is
JSON. A non-200 answer is an error: its `{"Err": "..."}` if present, else the body,
as `<Method>: <text>`. A connection that cannot be made (socket missing, refused, plugin
restarting) is retried with dockerd's back-off (1, 2, 4, 8 ... s) while the elapsed time
plus the next pause stays under the retry budget (30 s in dockerd, so about 15 s of
retries); then the last connection error is raised, naming the address.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from ..errors import SystemError_
from ..util.tlsdefer import ensure_ssl
from .discovery import PluginSpec, TLSOptions

if TYPE_CHECKING:
    import ssl

log = logging.getLogger("pydockerd.plugins")

MIME = "application/vnd.docker.plugins.v1.2+json"
RETRY_BUDGET = 30.0           # dockerd's defaultTimeOut (seconds)
REQUEST_TIMEOUT = 120.0       # dockerd's longTimeout for volume calls


class PluginUnavailable(SystemError_):
    """The plugin could not be reached (after the retries)."""


class PluginCallError(SystemError_):
    """The plugin answered with an error (non-200, or a body that is not JSON);
    `plugin_status` is the HTTP status of its answer (404: it lacks the method)."""

    def __init__(self, message: str, plugin_status: int = 200) -> None:
        super().__init__(message)
        self.plugin_status = plugin_status


def backoff(retries: int, budget: float) -> float:
    b = 1.0
    while b < budget and retries > 0:
        b *= 2
        retries -= 1
    return min(b, budget)


def _ssl_context(tls: TLSOptions) -> ssl.SSLContext:
    ensure_ssl()                # not loaded before the first https plugin (util/tlsdefer.py)
    import ssl
    ctx = ssl.create_default_context(cafile=tls.ca_file or None)
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert_file:
        ctx.load_cert_chain(tls.cert_file, tls.key_file or None)
    return ctx


class PluginClient:
    def __init__(self, spec: PluginSpec, retry_budget: float = RETRY_BUDGET,
                 request_timeout: float = REQUEST_TIMEOUT) -> None:
        self.spec = spec
        self.retry_budget = retry_budget
        self.request_timeout = request_timeout
        u = urlsplit(spec.addr)
        self._unix = u.scheme == "unix"
        self._path = u.path if self._unix else ""
        self._hostport = u.netloc
        self._scheme = "https" if u.scheme == "https" else "http"
        # Go's URL for a unix socket: the socket path, escaped, as the host
        self._base = (f"http://{quote(self._path, safe='')}" if self._unix
                      else f"{self._scheme}://{self._hostport}")
        self._ssl: ssl.SSLContext | None = None
        if self._scheme == "https":
            try:
                self._ssl = _ssl_context(spec.tls or TLSOptions(insecure_skip_verify=True))
            except OSError as e:    # ssl.SSLError is an OSError
                raise SystemError_(f"plugin {spec.name}: TLS configuration: {e}") from None

    def _dial_error(self, url: str, e: BaseException) -> str:
        from ..util.httpclient import ConnectError, ServerDisconnected
        where = f"dial unix {self._path}" if self._unix else f"dial tcp {self._hostport}"
        code = e.os_error.errno if isinstance(e, ConnectError) else \
            e.errno if isinstance(e, OSError) else None
        if code:
            reason = os.strerror(code).lower()
            return f'Post "{url}": {where}: connect: {reason}'
        if isinstance(e, ServerDisconnected):
            return f'Post "{url}": EOF'
        return f'Post "{url}": {e}'

    async def _post(self, url: str, body: bytes) -> tuple[int, bytes]:
        # a unix socket's URL names the socket as its host: http://localhost stands in
        target = f"http://localhost{urlsplit(url).path}" if self._unix else url
        from ..util.httpclient import HTTPClient, Timeouts
        async with HTTPClient(tls=self._ssl if self._ssl is not None else False,
                              unix_path=self._path,
                              timeouts=Timeouts(total=self.request_timeout)) as s:
            async with await s.request("POST", target, data=body, headers={
                    "Accept": MIME, "Content-Type": MIME}) as r:
                return r.status, await r.read()

    async def call(self, method: str, args: dict[str, Any] | None = None,
                   retry: bool = True) -> dict[str, Any]:
        """POST /<method>; the decoded JSON object of a 200 answer."""
        # the HTTP client loads with the first plugin call (issue 10: idle RSS)
        from ..util.httpclient import HTTPError, ResponseTimeout
        body = b"" if args is None else json.dumps(args).encode()
        url = f"{self._base}/{method}"
        start = time.monotonic()
        retries = 0
        while True:
            try:
                status, data = await self._post(url, body)
                break
            except ResponseTimeout:
                raise PluginUnavailable(f'Post "{url}": context deadline exceeded '
                                        "(Client.Timeout exceeded while awaiting "
                                        "headers)") from None
            except (HTTPError, OSError) as e:
                msg = self._dial_error(url, e)
                pause = backoff(retries, self.retry_budget)
                if not retry or time.monotonic() - start + pause >= self.retry_budget:
                    raise PluginUnavailable(msg) from None
                retries += 1
                log.warning("Unable to connect to plugin: %s: %s, retrying in %gs",
                            self.spec.name, msg, pause)
                await asyncio.sleep(pause)
        if status != 200:
            text = data.decode(errors="replace")
            try:
                doc = json.loads(data)
            except ValueError:
                doc = None
            if isinstance(doc, dict) and isinstance(doc.get("Err"), str) and doc["Err"]:
                text = doc["Err"]
            raise PluginCallError(f"{method}: {text}", status)
        if not data.strip():
            return {}
        try:
            doc = json.loads(data)
        except ValueError as e:
            raise PluginCallError(f"{method}: error reading plugin response: {e}") from None
        if not isinstance(doc, dict):
            raise PluginCallError(f"{method}: error reading plugin response: "
                                  "not a JSON object")
        return doc



async def call_checked(client: PluginClient, method: str, args: dict[str, Any] | None,
                       err_prefix: str = "") -> dict[str, Any]:
    """client.call(), and a 200 answer carrying a non-empty `Err` raises
    PluginCallError(err_prefix + Err) (libnetwork's remote drivers prefix "remote: ",
    the volume driver nothing)."""
    doc = await client.call(method, args)
    err = doc.get("Err")
    if isinstance(err, str) and err:
        raise PluginCallError(f"{err_prefix}{err}")
    return doc
