"""HTTP/1.1 listeners (unix, tcp, tcp+TLS, systemd fd) serving one Router.

Each accepted socket is an api/connection.py Connection (an asyncio.Protocol);
answers are written by api/respond.py; exceptions become a status and a message
in api/errormap.py (the one place).
"""
from __future__ import annotations

import asyncio
import os
import socket
from typing import TYPE_CHECKING

from ..util.tasks import TaskOwner
from .authz import Authorizer
from .connection import Connection, Site
from .errormap import error_response
from .router import Router
from .version import API_VERSION, MIN_API_VERSION, version_str

if TYPE_CHECKING:
    import ssl  # the daemon's --tls context (daemon.py), made after util/tlsdefer.ensure_ssl

__all__ = ["API_VERSION", "MIN_API_VERSION", "ApiServer", "error_response", "version_str"]


class ApiServer:
    """Serves one Router on any number of listeners (unix, tcp, tcp+tls, fd)."""

    def __init__(self, router: Router, authz: Authorizer | None = None) -> None:
        self.router = router
        self.authz = authz                  # authorization plugins (api/authz.py)
        self._servers: list[asyncio.base_events.Server] = []
        # a request that has to wait runs as a task of this owner: finish() ends them all
        self._site = Site(router, authz, TaskOwner("api requests"))

    def _connection(self) -> Connection:
        return Connection(self._site)

    async def listen_unix(self, path: str, gid: int | None) -> None:
        if os.path.exists(path) or os.path.islink(path):
            os.unlink(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        loop = asyncio.get_running_loop()
        srv = await loop.create_unix_server(self._connection, path)
        os.chmod(path, 0o660)
        if gid is not None:
            os.chown(path, 0, gid)
        self._servers.append(srv)

    async def listen_tcp(self, host: str, port: int, ssl_ctx: ssl.SSLContext | None) -> None:
        loop = asyncio.get_running_loop()
        self._servers.append(await loop.create_server(self._connection, host, port, ssl=ssl_ctx))

    async def listen_fd(self, fd: int, ssl_ctx: ssl.SSLContext | None) -> None:
        """Serve a listening socket passed by systemd (TLS on it too, as dockerd does)."""
        sock = socket.socket(fileno=fd)
        loop = asyncio.get_running_loop()
        if sock.family == socket.AF_UNIX:
            srv = await loop.create_unix_server(self._connection, sock=sock, ssl=ssl_ctx)
        else:
            srv = await loop.create_server(self._connection, sock=sock, ssl=ssl_ctx)
        self._servers.append(srv)

    async def stop_accepting(self) -> None:
        """Close the listeners (Server.wait_closed would also wait for every open
        connection, e.g. `docker events`; finish() bounds that instead)."""
        for s in self._servers:
            s.close()

    async def finish(self, timeout: float) -> None:
        """Close idle connections, give requests in flight `timeout` seconds, then
        cancel those still running (streams end cleanly, hijacked connections are
        closed), wait for them and close every connection."""
        site = self._site
        site.closing = True
        for conn in list(site.connections):
            conn.close(idle_only=True)
        await site.tasks.close(grace=timeout)
        for conn in list(site.connections):
            conn.close()
