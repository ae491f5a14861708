"""Container routes: parse, call one service method, serialise."""
from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

from ...containers.listing import select
from ...containers.logs import LogQuery
from ...containers.service import ContainerService
from ...containers.validate import validate_create, validate_update
from ...errors import CommandFailed, InvalidParameter, NotFound, NotImplementedErr
from ...images.service import ImageService
from ...logdrivers.options import readable
from ...models import ContainerCreateRequest, UpdateConfig, to_doc
from ...network.service import NetworkService
from ...util.ids import parse_unix_or_rfc3339_ns
from ...util.gcpause import gc_paused
from ...util.tasks import cancel_and_wait
from .. import wire_containers as wire
from ..decode import decode_body
from ..netcompat import migrate_mac_address
from ..http import (AnyResponse, HijackResponse, Request, Response, StreamResponse, empty,
                    go_quote, json_response)
from ..router import Route
from ..streams import (frame, log_frames, open_session, parse_detach_keys, pump_attach,
                       release_session)

if TYPE_CHECKING:
    from ...containers.archive import ArchiveService
    from ...containers.stats import StatsService

log = logging.getLogger("pydockerd.api")


def _time_ns(v: str | None) -> int:
    if not v:
        return 0
    try:
        return parse_unix_or_rfc3339_ns(v)
    except ValueError:
        raise InvalidParameter(f"invalid time value: {v}") from None


class ContainerRoutes:
    def __init__(self, containers: ContainerService, images: ImageService,
                 networks: NetworkService, stats: Callable[[], StatsService],
                 archive: Callable[[], ArchiveService]) -> None:
        self.c = containers
        self.images = images
        self.networks = networks
        self.stats = stats             # built by the first `docker stats`
        self.archive = archive         # built by the first cp or export (composition.py)

    def routes(self) -> list[Route]:
        r = Route
        return [
            r("POST", "/containers/create", self.create),
            r("GET", "/containers/json", self.list, inline=True),
            r("POST", "/containers/prune", self.prune),
            # a link name (`/parent/alias`) names its target, as in dockerd
            r("GET", "/containers/{id:path}/json", self.inspect, inline=True),
            r("POST", "/containers/{id}/start", self.start),
            r("POST", "/containers/{id}/stop", self.stop),
            r("POST", "/containers/{id}/restart", self.restart),
            r("POST", "/containers/{id}/kill", self.kill),
            r("POST", "/containers/{id}/pause", self.pause),
            r("POST", "/containers/{id}/unpause", self.unpause),
            r("POST", "/containers/{id}/wait", self.wait),
            r("DELETE", "/containers/{id:path}", self.remove),
            r("POST", "/containers/{id}/rename", self.rename),
            r("POST", "/containers/{id}/update", self.update),
            r("GET", "/containers/{id}/top", self.top),
            r("GET", "/containers/{id}/logs", self.logs),
            r("POST", "/containers/{id}/attach", self.attach),
            r("GET", "/containers/{id}/attach/ws", self.attach_ws),
            r("POST", "/containers/{id}/resize", self.resize),
            r("GET", "/containers/{id}/stats", self.get_stats),
            r("GET", "/containers/{id}/changes", self.changes),
            r("GET", "/containers/{id}/export", self.export),
            r("HEAD", "/containers/{id}/archive", self.archive_head),
            r("GET", "/containers/{id}/archive", self.archive_get),
            r("PUT", "/containers/{id}/archive", self.archive_put),
        ]

    def _network_ids(self) -> dict[str, str]:
        return {n.name: n.id for n in self.networks.list()}

    async def create(self, req: Request) -> AnyResponse:
        create = decode_body(await req.body.read(), ContainerCreateRequest, required=True)
        create, warnings = migrate_mac_address(create, req.api_version)
        validate_create(create, create.HostConfig)
        body = to_doc(create) or {}
        host_config = body.pop("HostConfig", None)
        networking = body.pop("NetworkingConfig", None)
        platform = req.q("platform")
        if platform and platform not in ("linux", "linux/amd64", "linux/x86_64") \
                and not platform.startswith("linux/"):
            raise InvalidParameter(f"unsupported platform {platform}")
        c = await self.c.create(req.q("name"), body, host_config, networking)
        return json_response({"Id": c.id, "Warnings": warnings}, 201)

    async def list(self, req: Request) -> AnyResponse:
        size = req.q_bool("size")
        chosen = select(self.c.all(), req.q_bool("all"), req.q_int("limit", -1) or 0,
                        req.filters(), self.c.get, self.images.matches_container_image)
        if not chosen:
            return json_response([])
        sizes = [await asyncio.to_thread(self.images.container_size, ct.id, ct.image_id)
                 for ct in chosen] if size else [None] * len(chosen)
        ids = self._network_ids()
        link_names = self.c.link_names()
        with gc_paused():                  # a hundred small dicts, no cycles: no collections
            return json_response([wire.summary(ct, ids, sz, link_names.get(ct.id, []))
                                  for ct, sz in zip(chosen, sizes)])

    async def inspect(self, req: Request) -> AnyResponse:
        ct = self.c.get(req.params["id"])
        sz = await asyncio.to_thread(self.images.container_size, ct.id, ct.image_id) \
            if req.q_bool("size") else None
        return json_response(wire.inspect(ct, self._network_ids(),
                                          self.images.graph_driver(ct.id, ct.image_id), sz,
                                          self.c.inspect_links(ct), self.c.sandbox_key(ct)))

    async def start(self, req: Request) -> AnyResponse:
        if req.q("checkpoint"):
            raise InvalidParameter("checkpoints are not supported")
        body = await req.json()
        if body:
            raise InvalidParameter("starting container with non-empty request body was "
                                   "deprecated since API v1.22 and removed in v1.24")
        await self.c.start(req.params["id"])
        return empty()

    async def stop(self, req: Request) -> AnyResponse:
        done = await self.c.stop(req.params["id"], req.q_int("t"), req.q("signal"))
        return empty(204 if done else 304)

    async def restart(self, req: Request) -> AnyResponse:
        await self.c.restart(req.params["id"], req.q_int("t"), req.q("signal"))
        return empty()

    async def kill(self, req: Request) -> AnyResponse:
        await self.c.kill(req.params["id"], req.q("signal"))
        return empty()

    async def pause(self, req: Request) -> AnyResponse:
        await self.c.pause(req.params["id"])
        return empty()

    async def unpause(self, req: Request) -> AnyResponse:
        await self.c.unpause(req.params["id"])
        return empty()

    async def wait(self, req: Request) -> AnyResponse:
        cond = req.q("condition", "not-running") or "not-running"
        if not req.version_at_least(1, 30):
            cond = "not-running"
        elif cond not in _WAIT_CONDITIONS:
            raise InvalidParameter(f"invalid condition: {go_quote(cond)}")
        ref = req.params["id"]
        self.c.get(ref)  # 404 before the 200 header goes out

        async def body() -> AsyncIterator[bytes]:
            # the wait starts before the header goes out (the CLI waits for the header
            # before starting the container); the JSON body follows when the condition
            # is met. The waiter belongs to this request: it ends with it.
            waiter = asyncio.ensure_future(self.c.wait(ref, cond))
            try:
                yield b""
                try:
                    ct = await waiter
                except NotFound:
                    yield json.dumps({"StatusCode": 0, "Error": None}).encode() + b"\n"
                    return
            finally:
                await cancel_and_wait(waiter)
            # a start failure was already reported by the start call itself
            err = {"Message": ct.state.error} if ct.state.error and cond != "removed" \
                and ct.state.status != "created" else None
            yield json.dumps({"StatusCode": ct.state.exit_code, "Error": err}).encode() + b"\n"
        return StreamResponse(body(), on_error=_wait_error)

    async def remove(self, req: Request) -> AnyResponse:
        if req.q_bool("link"):
            await self.c.remove_link(req.params["id"])
            return empty()
        await self.c.remove(req.params["id"], req.q_bool("force"), req.q_bool("v"))
        return empty()

    async def rename(self, req: Request) -> AnyResponse:
        await self.c.rename(req.params["id"], req.q("name") or "")
        return empty()

    async def update(self, req: Request) -> AnyResponse:
        upd = decode_body(await req.body.read(), UpdateConfig)
        validate_update(upd)
        warnings = await self.c.update(req.params["id"], upd)
        return json_response({"Warnings": warnings})

    async def top(self, req: Request) -> AnyResponse:
        from ...containers.top import top        # with its cgroup reading (idle memory)
        try:
            titles, procs = await top(self.c.get(req.params["id"]), req.q("ps_args") or "-ef")
        except CommandFailed as e:
            if e.argv[:1] != ["ps"]:
                raise
            # dockerd shows the first line of ps's complaint (daemon/top_unix.go)
            why = (e.stderr.strip().splitlines() or [f"exit status {e.returncode}"])[0]
            raise InvalidParameter(f"ps: {why}") from None
        return json_response({"Titles": titles, "Processes": procs})

    async def logs(self, req: Request) -> AnyResponse:
        ct = self.c.get(req.params["id"])
        lc = ct.host_config["LogConfig"]
        if not readable(lc["Type"], lc.get("Config") or {}):
            raise NotImplementedErr("configured logging driver does not support reading")
        stdout, stderr = req.q_bool("stdout"), req.q_bool("stderr")
        if not stdout and not stderr:
            raise InvalidParameter("Bad parameters: you must choose at least one stream")
        tail = req.q("tail", "all") or "all"
        try:
            tail_n = -1 if tail == "all" else int(tail)
        except ValueError:
            tail_n = -1
        q = LogQuery(stdout=stdout, stderr=stderr, since_ns=_time_ns(req.q("since")),
                     until_ns=_time_ns(req.q("until")), tail=tail_n,
                     timestamps=req.q_bool("timestamps"), follow=req.q_bool("follow"))
        details = req.q_bool("details")
        tty = ct.tty

        async def body() -> AsyncIterator[bytes]:
            yield b""      # dockerd answers 200 at once: the arguments were checked
            async for batch in self.c.read_logs(ct, q):
                yield log_frames(batch, tty, q.timestamps, details)
        ctype = "application/vnd.docker.raw-stream" if tty \
            else "application/vnd.docker.multiplexed-stream"

        def log_error(message: str) -> bytes:
            text = f"Error grabbing logs: {message}\n".encode()
            return text if tty else frame("stderr", text)
        return StreamResponse(body(), ctype, on_error=log_error)

    async def attach(self, req: Request) -> AnyResponse:
        ct = self.c.get(req.params["id"])
        want = {s for s in ("stdout", "stderr") if req.q_bool(s)}
        use_stdin = req.q_bool("stdin")
        stream = req.q_bool("stream")
        logs = req.q_bool("logs")
        try:
            keys = parse_detach_keys(req.q("detachKeys"))
        except ValueError as e:
            raise InvalidParameter(str(e)) from None
        tty = ct.tty
        ctype = "application/vnd.docker.raw-stream" if tty \
            else "application/vnd.docker.multiplexed-stream"
        session_fut = await open_session(self.c.attach(req.params["id"]),
                                         ct.state.running) if stream else None

        async def handler(reader: Any, writer: asyncio.StreamWriter) -> None:
            if logs and want:
                q = LogQuery(stdout="stdout" in want, stderr="stderr" in want)
                async for batch in self.c.read_logs(ct, q):
                    writer.write(log_frames(batch, tty, False, False))
                    await writer.drain()
            if session_fut is None:
                return
            try:
                session = await session_fut
            except Exception as e:  # noqa: BLE001 - the container failed to start
                log.info("attach to %s ended before any output: %s", ct.id[:12], e)
                return
            self.c.event(ct, "attach")
            try:
                if await pump_attach(
                        reader, writer, session, raw=tty, tty=tty,
                        stdin_once=bool(ct.config.get("StdinOnce")),
                        use_stdin=use_stdin and bool(ct.config.get("OpenStdin")),
                        want=want, keys=keys):
                    self.c.event(ct, "detach")
            finally:
                session.close()
                try:
                    if writer.can_write_eof():
                        writer.write_eof()
                except OSError:
                    pass
        return HijackResponse(handler, ctype, on_closed=lambda: release_session(session_fut))

    async def resize(self, req: Request) -> AnyResponse:
        h, w = req.tty_size()
        self.c.resize(req.params["id"], h, w)
        return Response(200, b"", "text/plain; charset=utf-8")

    async def attach_ws(self, req: Request) -> AnyResponse:
        # the WebSocket framing loads with the first such attach (issue 10: idle memory)
        from .attach_ws import WebSocketAttach
        return await WebSocketAttach(self.c).handle(req)

    async def get_stats(self, req: Request) -> AnyResponse:
        ct = self.c.get(req.params["id"])
        stream = req.q_bool("stream", True)
        one_shot = req.q_bool("one-shot")

        async def body() -> AsyncIterator[bytes]:
            async for doc in self.stats().stream(ct, stream, one_shot):
                yield json.dumps(doc).encode() + b"\n"
        return StreamResponse(body())

    async def changes(self, req: Request) -> AnyResponse:
        ct = self.c.get(req.params["id"])
        return json_response(await asyncio.to_thread(self.images.changes, ct.id) or None)

    async def export(self, req: Request) -> AnyResponse:
        ct = self.c.get(req.params["id"])
        return StreamResponse(self.archive().export(ct), "application/x-tar")

    async def archive_head(self, req: Request) -> AnyResponse:
        path = _archive_path(req)
        ct = self.c.get(req.params["id"])
        stat = await self.archive().stat(ct, path)
        return Response(200, b"", "application/json",
                        {"X-Docker-Container-Path-Stat": _stat_header(stat)})

    async def archive_get(self, req: Request) -> AnyResponse:
        path = _archive_path(req)
        ct = self.c.get(req.params["id"])
        stat, chunks = await self.archive().get(ct, path)
        return StreamResponse(chunks, "application/x-tar",
                              headers={"X-Docker-Container-Path-Stat": _stat_header(stat)})

    async def archive_put(self, req: Request) -> AnyResponse:
        path = _archive_path(req)
        ct = self.c.get(req.params["id"])
        await self.archive().put(ct, path, req.body.chunks(),
                                 no_overwrite_dir_non_dir=req.q_bool("noOverwriteDirNonDir"),
                                 copy_uid_gid=req.q_bool("copyUIDGID"))
        return Response(200, b"", None)

    async def prune(self, req: Request) -> AnyResponse:
        f = req.filters()
        until = _time_ns(f["until"][0]) / 1e9 if f.get("until") else 0.0
        deleted, reclaimed = await self.c.prune(until, f.get("label"))
        return json_response({"ContainersDeleted": deleted or None,
                              "SpaceReclaimed": reclaimed})


_WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


def _wait_error(message: str) -> bytes:
    return json.dumps({"StatusCode": -1, "Error": {"Message": message}}).encode() + b"\n"


def _archive_path(req: Request) -> str:
    path = req.q("path") or ""
    if not path:
        raise InvalidParameter("bad parameter: path cannot be empty")
    return path


def _stat_header(stat: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(stat).encode()).decode()


def routes(containers: ContainerService, images: ImageService, networks: NetworkService,
           stats: Callable[[], StatsService], archive: Callable[[], ArchiveService]
           ) -> list[Route]:
    return ContainerRoutes(containers, images, networks, stats, archive).routes()


__all__ = ["routes"]
