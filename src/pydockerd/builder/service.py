"""BuildService: POST /build with the classic builder.

prepare() receives the context (errors there are plain HTTP errors); the
returned Build streams dockerd's JSON messages while it runs the Dockerfile:
every instruction commits an image (metadata-only ones as empty_layer history
entries), RUN in an intermediate container, COPY/ADD in a temporary rw layer.
"""
from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import shutil
import tempfile
from typing import Any, AsyncIterator, Awaitable, Callable

from ..errors import DockerError, InvalidParameter, NotFound
from ..images.model import Image
from ..images.references import repo_tag_reference
from ..images.service import ImageService
from ..instruments import NO_BUILD_COUNTERS, BuildCounters
from ..models.build import BuildOptions
from ..progress import BuiltImage, ErrorEvent, KeepAlive, ProgressEvent, StreamText
from .basepull import split_tag
from .buildcontext import BuildContext, ContextMemo, spool_body
from .cache import StepCache
from .commit import StepCommitter
from .context import content_hash, resolve_sources
from .copy import copy_into
from .instructions import DISPATCH
from .parser import Instruction, pairs, parse, substitute
from .remote import download
from .run import run_step
from .source import from_remote
from .stage import DEFAULT_PATH, BuildContainers, Stage, StepFailed

log = logging.getLogger("pydockerd.builder")

_KEEPALIVE = 2.0                 # seconds of silence before a whitespace keep-alive
# builder_builds_failed_total's reasons that this builder detects (dockerd 20.10's
# labels; its others, e.g. dockerfile_syntax_error, are never counted by dockerd either)
UNKNOWN_INSTRUCTION = "unknown_instruction_error"
TARGET_NOT_REACHABLE = "build_target_not_reachable_error"
DOCKERFILE_EMPTY = "dockerfile_empty_error"
CANCELED = "build_canceled"
_BUILTIN_ARGS = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                 "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}


class BuildService:
    def __init__(self, images: ImageService, containers: BuildContainers,
                 pull: Callable[[str], Awaitable[None]] | None = None,
                 counters: BuildCounters = NO_BUILD_COUNTERS) -> None:
        self.images = images
        self.counters = counters
        self.containers = containers
        self.pull = pull            # async (ref) -> None, or None: FROM needs local images
        self.committer = StepCommitter(images)
        self.cache = StepCache(images)
        self.contexts = ContextMemo(os.path.join(images.data_root, "builder", "contexts.json"))

    async def prepare(self, chunks: AsyncIterator[bytes], opts: BuildOptions) -> "Build":
        """The context (the body, or opts.remote) and the Dockerfile, before the stream."""
        self.counters.triggered()
        for t in opts.tags:
            repo_tag_reference(*split_tag(t))          # invalid names fail before reading
        self.images.require_space("build")
        os.makedirs(self.images.tmp_dir, exist_ok=True)
        ctx = tempfile.mkdtemp(prefix="context-", dir=self.images.tmp_dir)
        try:
            name = opts.dockerfile or "Dockerfile"
            if opts.remote:
                src = await from_remote(opts.remote, ctx, name)
                context = BuildContext.extracted(src.root, src.dockerfile)
            else:
                body = await spool_body(chunks, os.path.join(ctx, "context.tar"))
                context = await BuildContext.from_body(body, ctx, name, self.contexts)
            instructions, escape = parse(context.dockerfile)
            return Build(self, ctx, context, instructions, escape, opts)
        except BaseException:
            shutil.rmtree(ctx, ignore_errors=True)
            raise

    def prune(self) -> tuple[list[str], int]:
        """POST /build/prune: as dockerd, which prunes only BuildKit's cache there; the
        classic builder's cache is the image store (`docker image prune` / rmi)."""
        return [], 0


class Build:
    """One build: runs in a task, its messages are the response body."""

    def __init__(self, svc: BuildService, tmp: str, context: BuildContext,
                 instructions: list[Instruction], escape: str, opts: BuildOptions) -> None:
        self.svc, self.tmp, self.context = svc, tmp, context
        self.instructions, self.escape, self.opts = instructions, escape, opts
        self.images, self.containers, self.committer = svc.images, svc.containers, svc.committer
        self.queue: asyncio.Queue[ProgressEvent | None] = asyncio.Queue()
        self.meta_args: dict[str, str] = {}
        self.used_args: set[str] = set()
        self.stages: list[Stage] = []
        self.cache_sources: list[Image] = []       # the cachefrom images found
        self.outcome_sent = False                  # the build's result/error is queued

    # --- output -------------------------------------------------------------------------
    def say(self, text: str) -> None:
        if not self.opts.quiet:
            self.queue.put_nowait(StreamText(text))

    async def stream(self) -> AsyncIterator[ProgressEvent]:
        task = asyncio.ensure_future(self._guarded())
        try:
            while True:
                try:
                    item = await asyncio.wait_for(self.queue.get(), _KEEPALIVE)
                except asyncio.TimeoutError:
                    # whitespace between JSON messages (clients skip it): a client
                    # that went away is noticed, and its build cancelled, while a
                    # RUN prints nothing
                    yield KeepAlive()
                    continue
                if item is None:
                    break
                yield item
        finally:
            if not task.done():
                if not self.outcome_sent:               # the client went away mid-build
                    self.svc.counters.failed(CANCELED)
                    task.cancel()
                try:
                    await task                          # (else only the cleanup is left)
                except BaseException:  # noqa: BLE001 - the client is gone
                    pass

    async def _guarded(self) -> None:
        try:
            await self._run()
        except StepFailed as e:
            self.queue.put_nowait(ErrorEvent(e.message, e.code))
        except DockerError as e:
            self.queue.put_nowait(ErrorEvent(e.message))
        except Exception as e:  # noqa: BLE001 - reported to the client
            log.exception("build failed")
            self.queue.put_nowait(ErrorEvent(str(e)))
        finally:
            # the result or the error is out: a client that leaves now (the CLI exits
            # on the error message) did not cancel the build
            self.outcome_sent = True
            await asyncio.to_thread(shutil.rmtree, self.tmp, True)
            self.queue.put_nowait(None)

    # --- the Dockerfile -----------------------------------------------------------------
    def _plan(self) -> tuple[list[Instruction], list[tuple[Instruction, list[Instruction]]]]:
        meta: list[Instruction] = []
        stages: list[tuple[Instruction, list[Instruction]]] = []
        for ins in self.instructions:
            if ins.cmd and ins.cmd != "FROM" and ins.cmd not in DISPATCH:
                self.svc.counters.failed(UNKNOWN_INSTRUCTION)
                raise InvalidParameter(f"unknown instruction: {ins.cmd}")
            if ins.cmd == "FROM":
                stages.append((ins, []))
            elif not stages:
                if ins.cmd != "ARG":
                    raise InvalidParameter("Please provide a source image with `from` prior "
                                           "to commit" if ins.cmd else "no FROM")
                meta.append(ins)
            else:
                stages[-1][1].append(ins)
        if not stages:
            if meta:
                self.svc.counters.failed(DOCKERFILE_EMPTY)
            raise InvalidParameter("the Dockerfile cannot be empty" if not meta else
                                   "No image was generated. Is your Dockerfile empty?")
        if self.opts.target:
            names = [self._stage_name(f) for f, _ in stages]
            if self.opts.target not in names:
                self.svc.counters.failed(TARGET_NOT_REACHABLE)
                raise InvalidParameter(f"failed to reach build target {self.opts.target} "
                                       "in Dockerfile")
            stages = stages[:names.index(self.opts.target) + 1]
        if self.opts.labels:
            text = " ".join(f"{json.dumps(k)}={json.dumps(v)}"
                            for k, v in sorted(self.opts.labels.items()))
            stages[-1][1].append(Instruction("LABEL", text, "LABEL " + text))
        return meta, stages

    @staticmethod
    def _stage_name(ins: Instruction) -> str:
        parts = ins.rest.split()
        return parts[2].lower() if len(parts) == 3 and parts[1].upper() == "AS" else ""

    async def _run(self) -> None:
        meta, stages = self._plan()
        for ref in self.opts.cachefrom:
            try:
                self.cache_sources.append(self.images.resolve(ref))
            except NotFound:                    # as dockerd: skipped (it logs a warning)
                log.warning("Could not look up %s for cache resolution, skipping", ref)
        total = len(meta) + sum(1 + len(body) for _, body in stages)
        step = 0
        for ins in meta:
            step += 1
            self.say(f"Step {step}/{total} : {ins.original}\n")
            for k, v in pairs("ARG", ins.rest):
                value = self.arg_value(k, substitute(v, self.meta_args, self.escape)
                                       if "=" in ins.rest else None)
                if value is not None:
                    self.meta_args[k] = value
        st: Stage | None = None
        for index, (from_ins, body) in enumerate(stages):
            step += 1
            self.say(f"Step {step}/{total} : {from_ins.original}\n")
            st = await self._from(from_ins, index)
            for ins in body:
                step += 1
                self.say(f"Step {step}/{total} : {ins.original}\n")
                await DISPATCH[ins.cmd](self, st, ins)
        assert st is not None
        if st.image is None:                       # FROM scratch and nothing else
            st.image = await self.committer.metadata(None, st.config,
                                                     "/bin/sh -c #(nop) FROM scratch")
        unused = sorted(k for k, v in self.opts.buildargs.items()
                        if k not in self.used_args and k not in _BUILTIN_ARGS)
        if unused:
            self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not "
                     "consumed\n")
        img = st.image
        self.queue.put_nowait(BuiltImage(img.id))
        if self.opts.quiet:
            self.queue.put_nowait(StreamText(img.id + "\n"))
        self.say(f"Successfully built {img.short_id}\n")
        for t in self.opts.tags:
            repo, tag = split_tag(t)
            name = await asyncio.to_thread(self.images.tag, img.id, repo, tag)
            shown = name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"
            self.say(f"Successfully tagged {shown}\n")

    def arg_value(self, name: str, default: str | None) -> str | None:
        if name in self.opts.buildargs and self.opts.buildargs[name] is not None:
            self.used_args.add(name)
            return self.opts.buildargs[name]
        self.used_args.add(name)
        return default

    def declare_arg(self, args: dict[str, str], name: str, default: str | None) -> None:
        value = self.arg_value(name, default)
        if value is None:
            value = self.meta_args.get(name)
        if value is not None:
            args[name] = value

    async def _from(self, ins: Instruction, index: int) -> Stage:
        parts = substitute(ins.rest, self.meta_args, self.escape).split()
        if not parts or len(parts) not in (1, 3) or \
                (len(parts) == 3 and parts[1].upper() != "AS"):
            raise InvalidParameter("FROM requires either one or three arguments")
        st = Stage(name=parts[2].lower() if len(parts) == 3 else "", index=index)
        base = parts[0]
        prev = self.find_stage(base)
        if prev is not None:
            st.image = prev.image
        elif base.lower() != "scratch":
            st.image = await self._base_image(base)
        if st.image is not None:
            st.config = copy.deepcopy((st.image.config or {}).get("config") or {})
            self.say(f" ---> {st.image.short_id}\n")
        else:
            st.config = {"Env": [DEFAULT_PATH]}
        self.stages.append(st)
        triggers = list(st.config.get("OnBuild") or [])
        if triggers:
            self.say(f"# Executing {len(triggers)} build trigger"
                     f"{'s' if len(triggers) > 1 else ''}\n")
            st.config["OnBuild"] = None
            for text in triggers:
                sub, _ = parse(text)
                for trig in sub:
                    await DISPATCH[trig.cmd](self, st, trig)
        return st

    def find_stage(self, ref: str) -> Stage | None:
        for s in self.stages:
            if s.name and s.name == ref.lower():
                return s
        if ref.isdigit() and int(ref) < len(self.stages):
            return self.stages[int(ref)]
        return None

    async def _base_image(self, ref: str) -> Image:
        try:
            img: Image = self.images.resolve(ref)
            return img
        except NotFound:
            if self.svc.pull is None:
                raise
        await self.svc.pull(ref)
        img = self.images.resolve(ref)
        return img

    # --- steps (called by instructions.py) ---------------------------------------------------
    async def cached(self, st: Stage, created_by: str) -> bool:
        if self.opts.nocache:
            return False
        img = await self.svc.cache.lookup(st.image, created_by, st.config, self.cache_sources)
        if img is None:
            return False
        st.image = img
        st.config = copy.deepcopy((img.config or {}).get("config") or {})
        self.say(" ---> Using cache\n")
        self.say(f" ---> {img.short_id}\n")
        return True

    def step_done(self, st: Stage, parent: Image | None, created_by: str, img: Image) -> None:
        self.svc.cache.record(parent, created_by, img)
        st.image = img
        self.say(f" ---> {img.short_id}\n")

    async def commit_metadata(self, st: Stage, created_by: str) -> None:
        if await self.cached(st, created_by):
            return
        parent = st.image
        img = await self.committer.metadata(parent, st.config, created_by)
        self.step_done(st, parent, created_by, img)

    async def commit_layer(self, st: Stage, write: Callable[[str], None], created_by: str,
                           before: Callable[[], Awaitable[None]] | None = None) -> None:
        if await self.cached(st, created_by):
            return
        if before is not None:
            await before()
        parent = st.image
        async with self.committer.snapshot(parent) as (root, upper):
            await asyncio.to_thread(write, root)
            img = await self.committer.layer(parent, st.config, upper, created_by)
        self.step_done(st, parent, created_by, img)

    async def copy_from(self, st: Stage, src_from: str, srcs: list[str], dest: str,
                        workdir: str, owner: str,
                        ins: Instruction) -> None:
        other = self.find_stage(src_from)
        source = other.image if other is not None else await self._base_image(src_from)
        if source is None:
            raise InvalidParameter(f"COPY --from={src_from}: the stage has no files")
        async with self.committer.snapshot(source) as (src_root, _):
            def sources() -> list[str]:
                out: list[str] = []
                for s in srcs:
                    out.extend(resolve_sources(src_root, s))
                return out
            hosts = await asyncio.to_thread(sources)
            digest = await asyncio.to_thread(self.content_hash, hosts)

            def write(root: str) -> None:
                copy_into(root, hosts, dest, workdir, owner, False, ids=self.images.ids,
                          sources_remapped=True)
            created_by = f"/bin/sh -c #(nop) COPY {digest} in {dest} "
            await self.commit_layer(st, write, created_by)

    content_hash = staticmethod(content_hash)

    async def run(self, st: Stage, cmd: list[str]) -> None:
        await run_step(self, st, cmd)

    def run_host_config(self) -> dict[str, Any]:
        return self.opts.resources.host_config()

    async def download(self, url: str, dest: str) -> str:
        """ADD <url>: the file (0600, mtime from Last-Modified) under this build's
        temp dir, named as dockerd names it."""
        got = await download(url, tempfile.mkdtemp(prefix="add-", dir=self.tmp), "ADD failed: ")
        if not got.filename and dest.endswith("/"):
            raise InvalidParameter(f"ADD failed: cannot determine filename for source {url}")
        self.say("\n")
        return got.path
