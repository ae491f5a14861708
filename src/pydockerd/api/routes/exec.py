"""Exec routes."""
from __future__ import annotations

import asyncio
from typing import Any

from ...containers.execs import ExecService
from ...errors import DockerError, InvalidParameter
from ...models import ExecConfig, ExecStartConfig, to_doc
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
        inst = self.execs.create(req.params["id"], to_doc(body) or {})
        return json_response({"Id": inst.id}, 201)

    async def start(self, req: Request) -> AnyResponse:
        body = decode_body(await req.body.read(), ExecStartConfig)
        _check_console_size(body.ConsoleSize)
        detach = bool(body.Detach)
        tty = body.Tty
        inst = self.execs.get(req.params["id"])
        if body.ConsoleSize:
            h, w = body.ConsoleSize
            inst.console_size = (h, w)
        try:
            keys = parse_detach_keys(inst.detach_keys) if inst.detach_keys else None
        except ValueError as e:
            raise InvalidParameter(str(e)) from None
        if detach:
            await self.execs.start(inst.id, True, tty)
            return Response(200, b"", "application/json")
        self.execs.check_startable(inst.id)
        want = {s for s, on in (("stdout", inst.attach_stdout),
                                ("stderr", inst.attach_stderr)) if on}

        async def handler(reader: Any, writer: asyncio.StreamWriter) -> None:
            # like dockerd, a failure to start shows in the stream and in ExitCode
            try:
                session = await self.execs.start(inst.id, False, tty)
            except DockerError as e:
                msg = (e.message + "\n").encode()
                writer.write(msg if inst.tty else frame("stderr", msg))
                await writer.drain()
                return
            assert session is not None
            stdin = (session.send, session.close_stdin) if inst.attach_stdin else None
            try:
                detached = await pump_hijacked(reader, writer, session.output(), tty=inst.tty,
                                               want=want, stdin=stdin, detach_keys=keys)
                if not detached:
                    # the CLI asks for ExitCode as soon as the stream ends
                    await self.execs.wait_done(inst.id)
            finally:
                session.close()
        ctype = "application/vnd.docker.raw-stream" if (inst.tty if tty is None else tty) \
            else "application/vnd.docker.multiplexed-stream"
        return HijackResponse(handler, ctype)

    async def resize(self, req: Request) -> AnyResponse:
        self.execs.resize(req.params["id"], *req.tty_size())
        return Response(200, b"", "text/plain; charset=utf-8")

    async def inspect(self, req: Request) -> AnyResponse:
        i = self.execs.get(req.params["id"])
        return json_response({
            "CanRemove": False, "ContainerID": i.container_id, "DetachKeys": i.detach_keys,
            "ExitCode": i.exit_code, "ID": i.id, "OpenStderr": i.attach_stderr,
            "OpenStdin": i.attach_stdin, "OpenStdout": i.attach_stdout, "Running": i.running,
            "Pid": i.pid, "ProcessConfig": {"arguments": i.cmd[1:], "entrypoint": i.cmd[0],
                                            "privileged": i.privileged, "tty": i.tty,
                                            "user": i.user}})


def _check_console_size(size: list[int] | None) -> None:
    if size is not None and len(size) != 2:
        raise InvalidParameter("json: cannot unmarshal array into Go struct field "
                               "ConsoleSize of type [2]uint: want [height, width]")


def routes(execs: ExecService) -> list[Route]:
    return ExecRoutes(execs).routes()
