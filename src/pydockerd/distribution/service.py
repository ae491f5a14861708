"""The registry side of the image story (pull, push, login, manifest inspect, search)."""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, TypeVar

from ..config import Config
from ..errors import (DockerError, InvalidParameter, NotFound, SystemError_,
                      Unauthorized)
from ..events import EventBus
from ..images.references import DEFAULT_TAG, Reference, parse_normalized  # noqa: F401
from ..images.service import ImageService
from ..progress import ErrorEvent, ProgressEvent
from .auth import AuthConfig
from .blobcache import BlobCache
from .client import RegistryError, RegistrySession, TransportError, registry_error
from .endpoints import Endpoint, index_name, registry_endpoints
from .errors import pull_error, push_error
from .flights import LayerFlights
from .layerpull import PullSlots
from .manifest import ImageManifest, ManifestList, Platform, host_platform, parse_manifest
from .manifest import parse_platform
from .transfer import Limiter
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    from . import pull as pulling
    from . import push as pushing
else:   # loaded by the first pull or push (and the tar, digest and download modules
    # with them): an idle daemon does without (issue 10: idle memory)
    pulling = lazy_import("pydockerd.distribution.pull")
    pushing = lazy_import("pydockerd.distribution.push")

log = logging.getLogger("pydockerd.distribution")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ManifestDescriptor:
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class DistributionInfo:
    """GET /distribution/{name}/json: the manifest's descriptor and its platforms
    (the registry's own platform documents: os, architecture, variant...)."""
    descriptor: ManifestDescriptor
    platforms: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class SearchResult:
    name: str
    description: str = ""
    star_count: int = 0
    is_official: bool = False
    is_automated: bool = False


def pull_reference(from_image: str, tag: str | None) -> Reference:
    """POST /images/create's fromImage + tag (the tag may be a digest), as dockerd."""
    ref = parse_normalized(from_image)
    if tag:
        if tag.startswith("sha256:"):
            ref = parse_normalized(f"{ref.familiar_name()}@{tag}")
        else:
            ref = ref.with_tag(tag) if not ref.digest else ref
    return ref                      # neither tag nor digest: every tag (docker pull -a)


class DistributionService:
    def __init__(self, cfg: Config, images: ImageService, events: EventBus) -> None:
        self.cfg = cfg
        self.images = images
        self.events = events
        self.cache = BlobCache(images.data_root)
        self._preferred: dict[str, str] = {}
        # daemon-wide, as dockerd's transfer managers; the limits are read from
        # self.cfg when a transfer starts, so a SIGHUP reload applies to the next one
        self._downloads = Limiter(lambda: self.cfg.max_concurrent_downloads)
        # each unpack follows one download (layerpull.py): as many unpack threads
        self._pulls = PullSlots(self._downloads,
                                Limiter(lambda: self.cfg.max_concurrent_downloads),
                                LayerFlights())
        self._uploads = Limiter(lambda: self.cfg.max_concurrent_uploads)

    def reload(self, cfg: Config) -> None:
        """SIGHUP: the transfer limits are read at use time, so the next pull or push
        uses the reloaded ones."""
        self.cfg = cfg

    def gc_blobs(self) -> None:
        """Drop the kept registry blobs of layers no longer here (composition.py calls it
        when layers are purged: a removed layer's blobs go with it, not at the next pull)."""
        self.cache.gc({i.diff_id for i in self.images.layers.all().values()})

    # --- plumbing ------------------------------------------------------------------------
    async def _prepare(self) -> None:
        def work() -> None:
            self.cache.setup()
            self.gc_blobs()
        await asyncio.to_thread(work)

    async def _endpoints(self, domain: str) -> list[Endpoint]:
        eps = await asyncio.to_thread(registry_endpoints, self.cfg, domain)
        best = self._preferred.get(domain)
        return sorted(eps, key=lambda e: 0 if e.base == best else 1) if best else eps

    async def _with_endpoint(self, domain: str, auth: AuthConfig, scopes: list[str],
                             work: Callable[[RegistrySession], Awaitable[T]]
                             ) -> tuple[RegistrySession, T]:
        """Try each endpoint: the first that answers runs `work`; mirrors fall back on
        any registry error. The returned session is open (the caller closes it)."""
        last: BaseException | None = None
        for ep in await self._endpoints(domain):
            sess = RegistrySession(ep, auth, scopes)
            try:
                await sess.ping()
                self._preferred[domain] = ep.base
                return sess, await work(sess)
            except TransportError as e:
                await sess.close()
                last = e
                log.debug("registry endpoint %s failed: %s", ep.base, e)
            except RegistryError as e:
                await sess.close()
                if not ep.mirror:
                    raise
                last = e
            except BaseException:
                await sess.close()
                raise
        assert last is not None
        raise last

    async def open_session(self, ref: Reference, auth: AuthConfig, push: bool = False
                           ) -> RegistrySession:
        """An open session with the first endpoint of ref's registry that answers, with
        the repository's pull (or pull,push) scope; the caller closes it. Managed plugins
        (plugins/managed/) move plugin images with it and this package's pieces."""
        await self._prepare()

        async def nothing(sess: RegistrySession) -> None:
            return None
        sess, _ = await self._with_endpoint(
            ref.domain, auth, [f"repository:{ref.path}:{'pull,push' if push else 'pull'}"],
            nothing)
        return sess

    # --- pull / import ---------------------------------------------------------------------
    async def create(self, from_image: str | None, from_src: str | None, tag: str | None,
                     platform: str | None, auth: AuthConfig, body: AsyncIterator[bytes],
                     repo: str | None, changes: list[str], message: str
                     ) -> AsyncIterator[ProgressEvent]:
        """POST /images/create: pull (fromImage) or import (fromSrc)."""
        if from_image:
            return await self.pull(from_image, tag, platform, auth)
        if from_src:
            return self.images.import_image(body, from_src, repo or "", tag or "", changes,
                                            message, platform or "")
        raise InvalidParameter("fromImage or fromSrc is required")

    async def pull(self, from_image: str, tag: str | None, platform: str | None,
                   auth: AuthConfig) -> AsyncIterator[ProgressEvent]:
        """Resolve (errors raised here become normal HTTP errors), then stream."""
        ref = pull_reference(from_image, tag)
        self.images.require_space(f"pull {from_image}")
        if not ref.tag and not ref.digest:
            return await self._pull_all_tags(ref, platform, auth)
        wanted = parse_platform(platform)
        explicit = wanted is not None
        wanted = wanted or host_platform()
        await self._prepare()

        async def work(sess: RegistrySession) -> Any:
            return await pulling.resolve_image(sess, ref.path, ref.digest or ref.tag,
                                               ref.familiar(), wanted, explicit)
        try:
            sess, res = await self._with_endpoint(ref.domain, auth,
                                                  [f"repository:{ref.path}:pull"], work)
        except Exception as e:  # noqa: BLE001
            raise pull_error(e, ref) from None
        return pulling.Pull(self.images, self.cache, self.events, ref, res, self._pulls,
                            self.cfg.max_download_attempts).run()

    async def _pull_all_tags(self, ref: Reference, platform: str | None, auth: AuthConfig
                             ) -> AsyncIterator[ProgressEvent]:
        async def work(sess: RegistrySession) -> list[str]:
            resp = await sess.request("GET", f"/v2/{ref.path}/tags/list")
            async with resp:
                if resp.status != 200:
                    raise await registry_error(resp)
                doc = json.loads(await pulling.read_body(resp, 16 << 20, "tag list"))
            tags = doc.get("tags") if isinstance(doc, dict) else None
            return sorted(t for t in tags or [] if isinstance(t, str))
        try:
            sess, tags = await self._with_endpoint(ref.domain, auth,
                                                   [f"repository:{ref.path}:pull"], work)
        except Exception as e:  # noqa: BLE001
            raise pull_error(e, ref) from None
        await sess.close()
        if not tags:
            raise NotFound(f"no tags found for {ref.familiar_name()}")

        async def stream() -> AsyncIterator[ProgressEvent]:
            for t in tags:
                try:
                    one = await self.pull(f"{ref.name}:{t}", None, platform, auth)
                except DockerError as e:
                    yield ErrorEvent(e.message)
                    return
                async for ev in one:
                    yield ev
                    if isinstance(ev, ErrorEvent):
                        return
        return stream()

    # --- push ----------------------------------------------------------------------------
    async def push(self, name: str, tag: str | None, auth: AuthConfig
                   ) -> AsyncIterator[ProgressEvent]:
        ref = parse_normalized(name)
        if tag:
            ref = ref.with_tag(tag)
        targets = pushing.targets_for(self.images, ref)
        await self._prepare()
        eps = await self._endpoints(ref.domain)
        eps = [e for e in eps if not e.mirror]
        scopes = [f"repository:{ref.path}:pull,push"]
        last: BaseException | None = None
        for ep in eps:                          # find the endpoint that answers
            sess = RegistrySession(ep, auth, scopes)
            try:
                await sess.ping()
            except TransportError as e:
                await sess.close()
                last = e
                continue
            self._preferred[ref.domain] = ep.base
            return pushing.Push(self.images, self.cache, self.events, ref, targets, sess,
                                self._uploads).run()
        raise push_error(last or SystemError_("no registry endpoint"))

    # --- login ---------------------------------------------------------------------------
    async def login(self, auth: AuthConfig) -> str:
        """The login status text ("Login Succeeded"); pydockerd hands out no identity
        tokens."""
        host = index_name(auth.server_address)
        last: BaseException | None = None
        for ep in [e for e in await self._endpoints(host) if not e.mirror]:
            sess = RegistrySession(ep, auth, [])
            try:
                await sess.ping()
                self._preferred[host] = ep.base
                if sess._challenge("bearer"):
                    await sess.fetch_token([])
                elif sess._challenge("basic"):
                    resp = await sess.request("GET", "/v2/")
                    async with resp:
                        if resp.status != 200:
                            raise RegistryError(resp.status, "UNAUTHORIZED", "")
                return "Login Succeeded"
            except TransportError as e:
                last = e
            except RegistryError as e:
                if e.status in (401, 403):
                    raise Unauthorized(f"login attempt to {ep.base}/v2/ failed with status: "
                                       f"{e.status} {'Unauthorized' if e.status == 401 else 'Forbidden'}") from None
                raise SystemError_(str(e)) from None
            finally:
                await sess.close()
        raise SystemError_(str(last) if last else f"cannot reach registry {host}")

    # --- manifest inspect ------------------------------------------------------------------
    async def inspect(self, name: str, auth: AuthConfig) -> DistributionInfo:
        ref = parse_normalized(name)
        if not ref.tag and not ref.digest:
            ref = Reference(ref.name, DEFAULT_TAG)

        async def work(sess: RegistrySession) -> DistributionInfo:
            body, ctype, digest = await pulling.fetch_manifest(sess, ref.path,
                                                               ref.digest or ref.tag)
            m = parse_manifest(body, ctype, ref.familiar())
            desc = ManifestDescriptor(m.media_type, digest, len(body))
            if isinstance(m, ManifestList):
                plats = [d.platform for d in m.manifests if d.platform]
            else:
                assert isinstance(m, ImageManifest)
                cfg = json.loads(await pulling.fetch_blob_bytes(sess, ref.path, m.config))
                p = {"architecture": cfg.get("architecture", ""), "os": cfg.get("os", "")}
                if cfg.get("variant"):
                    p["variant"] = cfg["variant"]
                plats = [p]
            return DistributionInfo(desc, plats)
        try:
            sess, out = await self._with_endpoint(ref.domain, auth,
                                                  [f"repository:{ref.path}:pull"], work)
        except Exception as e:  # noqa: BLE001
            raise pull_error(e, ref) from None
        await sess.close()
        return out

    # --- search ----------------------------------------------------------------------------
    async def search(self, term: str, limit: int | None, filters: dict[str, list[str]],
                     auth: AuthConfig) -> list[SearchResult]:
        if not term:
            raise InvalidParameter("term is required")
        if limit is not None and not 1 <= limit <= 100:
            raise InvalidParameter("limit 0 is outside the range of [1, 100]"
                                   if limit == 0 else f"limit {limit} is outside the range of "
                                                      f"[1, 100]")
        first, _, rest = term.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            domain, needle = first, rest
        else:
            domain, needle = "docker.io", term
        for key, vals in filters.items():
            if key not in ("is-official", "is-automated", "stars"):
                raise InvalidParameter(f"invalid filter '{key}'")
            for v in vals:
                if key != "stars" and v not in ("true", "false"):
                    raise InvalidParameter(f"invalid filter '{key}={v}'")

        async def work(sess: RegistrySession) -> list[str]:
            sess.add_scope("registry:catalog:*")
            resp = await sess.request("GET", "/v2/_catalog?n=1000")
            async with resp:
                if resp.status != 200:
                    err = await registry_error(resp)
                    raise SystemError_(f"registry {domain} does not offer a catalog to search "
                                       f"(GET /v2/_catalog: {err})")
                doc = json.loads(await pulling.read_body(resp, 16 << 20, "catalog"))
            repos = doc.get("repositories") if isinstance(doc, dict) else None
            return [r for r in repos or [] if isinstance(r, str)]
        try:
            sess, repos = await self._with_endpoint(domain, auth, [], work)
        except DockerError:
            raise
        except Exception as e:  # noqa: BLE001
            raise SystemError_(str(e)) from None
        await sess.close()
        wants_official = filters.get("is-official", [])
        wants_automated = filters.get("is-automated", [])
        stars = [int(s) for s in filters.get("stars", []) if s.isdigit()]
        out = []
        for r in repos:
            if needle not in r:
                continue
            if "true" in wants_official or "true" in wants_automated or any(s > 0 for s in stars):
                continue
            out.append(SearchResult(r if domain == "docker.io" else f"{domain}/{r}"))
        return out[:limit or 25]


__all__ = ["DistributionService", "AuthConfig", "Platform", "NotFound"]
