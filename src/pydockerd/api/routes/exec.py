"""Exec routes."""
from __future__ import annotations

import asyncio
import base64
from typing import Any

from ...containers.execs import ExecService
from ...errors import DockerError, InvalidParameter
from ...models import ExecConfig, ExecStartConfig
from ..decode import decode_body
from ..http import AnyResponse, HijackResponse, Request, Response, json_response
from ..router import Route
from ..streams import frame, parse_detach_keys, pump_hijacked


class ExecRoutes:
    def __init__(self, execs: ExecService) -> None:
        self.execs = execs

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/containers/{id}/exec", self.create),
            Route("POST", "/exec/{id}/start", self.start),
            Route("POST", "/exec/{id}/resize", self.resize),
            Route("GET", "/exec/{id}/json", self.inspect),
        ]

    async def create(self, req: Request) -> AnyResponse:
        body = decode_body(await req.body.read(), ExecConfig)
        _check_console_size(body.ConsoleSize)
        _detach_keys(body.DetachKeys)
        inst = self.execs.create(req.params["id"], body)
        return json_response({"Id": inst.id}, 201)

    async def start(self, req: Request) -> AnyResponse:
        body = decode_body(await req.body.read(), ExecStartConfig)
        _check_console_size(body.ConsoleSize)
        inst = self.execs.get(req.params["id"])
        if body.Detach:
            await self.execs.start(inst.id, body)
            return Response(200, b"", "application/json")
        self.execs.check_startable(inst.id)
        # the process's TTY was decided by exec create; the start's Tty only chooses
        # the framing: raw (stdout only, as dockerd sends no stderr then) or stdcopy
        raw = bool(body.Tty)
        want = {s for s, on in (("stdout", inst.attach_stdout),
                                ("stderr", inst.attach_stderr and not raw)) if on}
        # detach keys are watched on a TTY only (ctrl-p,ctrl-q unless create set them)
        keys = _detach_keys(inst.detach_keys) if inst.tty else None

        async def handler(reader: Any, writer: asyncio.StreamWriter) -> None:
            # like dockerd, a failure to start shows in the stream and in ExitCode
            try:
                session = await self.execs.start(inst.id, body)
            except DockerError as e:
                msg = (e.message + "\r\n").encode()
                writer.write(msg if raw else frame("stdout", msg))
                await writer.drain()
                return
            assert session is not None
            stdin = (session.send, session.close_stdin) if inst.attach_stdin else None
            detached = False
            try:
                detached = await pump_hijacked(reader, writer, session.output(), tty=raw,
                                               want=want, stdin=stdin, detach_keys=keys)
                if not detached:
                    # the CLI asks for ExitCode as soon as the stream ends
                    await self.execs.wait_done(inst.id)
            except (ConnectionError, OSError):
                pass                    # the client went away: the process runs on
            finally:
                self.execs.release(session, detached)
        ctype = "application/vnd.docker.raw-stream" if raw \
            else "application/vnd.docker.multiplexed-stream"
        return HijackResponse(handler, ctype)

    async def resize(self, req: Request) -> AnyResponse:
        self.execs.resize(req.params["id"], *req.tty_size())
        return Response(200, b"", "text/plain; charset=utf-8")

    async def inspect(self, req: Request) -> AnyResponse:
        i = self.execs.get(req.params["id"])
        return json_response({
            "CanRemove": False, "ContainerID": i.container_id,
            # Go's []byte: the parsed keys in base64, "" when create set none
            "DetachKeys": base64.b64encode(_detach_keys(i.detach_keys)).decode()
            if i.detach_keys else "",
            "ExitCode": i.exit_code, "ID": i.id, "OpenStderr": i.attach_stderr,
            "OpenStdin": i.attach_stdin, "OpenStdout": i.attach_stdout, "Running": i.running,
            "Pid": i.pid, "ProcessConfig": {"arguments": i.cmd[1:], "entrypoint": i.cmd[0],
                                            "privileged": i.privileged, "tty": i.tty,
                                            "user": i.user}})


def _check_console_size(size: list[int] | None) -> None:
    if size is not None and len(size) != 2:
        raise InvalidParameter("json: cannot unmarshal array into Go struct field "
                               "ConsoleSize of type [2]uint: want [height, width]")


def _detach_keys(spec: str | None) -> bytes:
    """Exec create's DetachKeys as bytes (ctrl-p,ctrl-q when empty); dockerd's message."""
    try:
        return parse_detach_keys(spec)
    except ValueError:
        raise InvalidParameter(f"Invalid escape keys ({spec}) provided") from None


def routes(execs: ExecService) -> list[Route]:
    return ExecRoutes(execs).routes()
