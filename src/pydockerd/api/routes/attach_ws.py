"""GET /containers/{id}/attach/ws: attach over a websocket, as dockerd's wsContainersAttach.

- The container is looked up (404) and `detachKeys` checked (400) first, as plain
  HTTP errors; then the websocket handshake (api/websocket.py).
- Output is never multiplexed: stdout and stderr bytes go out raw, one data frame
  per chunk, binary frames from API 1.28 and text frames before (x/net's default).
- `stdin`, `stdout`, `stderr` are read from the query from API 1.42; before that all
  three are on. `logs` replays the log first, `stream` then attaches.
- Client input: the payload of its text, binary and continuation frames. Detach
  keys apply only to a TTY container (dockerd's copyEscapable); a detach ends the
  attach with a close frame and a `detach` event.
- A client close frame is the end of stdin: for a `StdinOnce` container without a
  TTY the container's stdin is closed and its output still comes until it exits;
  otherwise the attach ends. The server's close frame (1000) goes out when the
  attach ends: the container exited, the user detached or the client closed.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from ...containers.attach import AttachSession
from ...containers.logs import LogQuery
from ...containers.model import Container
from ...containers.service import ContainerService
from ...errors import InvalidParameter
from ..http import AnyResponse, HijackResponse, Request
from ..streams import open_session, parse_detach_keys, pump_attach, release_session
from ..websocket import HandshakeRefused, WebSocket, server_handshake, wait_closed

log = logging.getLogger("pydockerd.api")


async def _refused(reader: Any, writer: asyncio.StreamWriter) -> None:
    """Nothing follows a refused handshake: the connection closes after the head."""


class WebSocketAttach:
    def __init__(self, containers: ContainerService) -> None:
        self.c = containers

    async def handle(self, req: Request) -> AnyResponse:
        ct = self.c.get(req.params["id"])
        spec = req.q("detachKeys")
        try:
            keys = parse_detach_keys(spec)
        except ValueError:
            raise InvalidParameter(f"Invalid detach keys ({spec}) provided") from None
        try:
            handshake = server_handshake(req.headers)
        except HandshakeRefused as e:
            return HijackResponse(_refused, head=e.head())
        if req.version_at_least(1, 42):
            use_stdin = req.q_bool("stdin")
            want = {s for s in ("stdout", "stderr") if req.q_bool(s)}
        else:
            use_stdin, want = True, {"stdout", "stderr"}
        logs = req.q_bool("logs")
        binary = req.version_at_least(1, 28)
        session_fut = await open_session(self.c.attach(req.params["id"]), ct.state.running) \
            if req.q_bool("stream") else None

        async def handler(reader: Any, writer: asyncio.StreamWriter) -> None:
            ws = WebSocket(reader, writer, binary=binary)
            try:
                if logs and want:
                    q = LogQuery(stdout="stdout" in want, stderr="stderr" in want)
                    async for batch in self.c.read_logs(ct, q):
                        for e in batch:
                            ws.write(e.data)
                        await ws.drain()
                if session_fut is not None:
                    try:
                        session = await session_fut
                    except Exception as e:  # noqa: BLE001 - the container failed to start
                        log.info("attach to %s ended before any output: %s", ct.id[:12], e)
                        return
                    await self._stream(ct, ws, session, use_stdin, want, keys)
            except (ConnectionError, OSError):
                return
            finally:
                ws.close()
                try:
                    await ws.drain()
                except (ConnectionError, OSError):
                    pass
        return HijackResponse(handler, head=handshake.head(),
                              on_closed=lambda: release_session(session_fut))

    async def _stream(self, ct: Container, ws: WebSocket, session: AttachSession,
                      use_stdin: bool, want: set[str], keys: bytes) -> None:
        self.c.event(ct, "attach")
        try:
            # raw output: a websocket is never multiplexed
            if await pump_attach(
                    ws, ws, session, raw=True, tty=ct.tty,
                    stdin_once=bool(ct.config.get("StdinOnce")),
                    use_stdin=use_stdin and bool(ct.config.get("OpenStdin")),
                    want=want, keys=keys, client_gone=lambda: wait_closed(ws)):
                self.c.event(ct, "detach")
        finally:
            session.close()


__all__ = ["WebSocketAttach"]
