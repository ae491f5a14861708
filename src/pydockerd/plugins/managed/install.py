"""Getting a plugin onto the host: `docker plugin install` (GET /plugins/privileges,
POST /plugins/pull), `upgrade`, `create` from a context tar, and `push` (moby's
plugin/backend_linux.go). A failed install leaves nothing behind: the rootfs is
unpacked under <data-root>/plugins/tmp and moved into place only with the record."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from ... import __version__
from ...distribution.auth import AuthConfig
from ...distribution.client import RegistrySession
from ...distribution.errors import pull_error, push_error
from ...errors import DockerError, InvalidParameter
from ...images.references import DEFAULT_TAG, Reference, parse_normalized
from ...progress import ErrorEvent, ProgressEvent, PushedDigest, Status
from ...util.ids import new_id
from ...util.tasks import cancel_and_wait
from .config import initial_settings, parse_config, privileges, same_privileges
from .context import split_context
from .state import PluginRecord, PluginStore, plugin_name
from .transfer import Fetched, build_manifest, fetch_config, fetch_plugin, push_plugin


# the service's "save and announce" of a new or upgraded plugin record
Done = Callable[[PluginRecord, str], Awaitable[None]]
# an install's work: into the temporary rootfs, reporting on the queue
Work = Callable[[str, "asyncio.Queue[ProgressEvent | None]"], Awaitable[None]]


class RegistryAccess(Protocol):
    """The distribution service's sessions (distribution/service.py open_session)."""

    async def open_session(self, ref: Reference, auth: AuthConfig, push: bool = False
                           ) -> RegistrySession: ...


def remote_reference(remote: str) -> Reference:
    ref = parse_normalized(remote)
    return ref if ref.digest else ref.with_default_tag()


def _granted(privs: list[dict[str, Any]], granted: list[dict[str, Any]]) -> None:
    if not same_privileges(privs, granted):
        raise InvalidParameter("incorrect privileges")


class Installer:
    def __init__(self, store: PluginStore, registry: RegistryAccess) -> None:
        self.store = store
        self.registry = registry

    async def privileges(self, remote: str, auth: AuthConfig) -> list[dict[str, Any]]:
        """What the plugin at `remote` needs. As dockerd, a registry that cannot be
        reached answers no privileges (the pull then fails with the reason); a reference
        that is not a plugin is an error."""
        ref = remote_reference(remote)
        try:
            sess = await self.registry.open_session(ref, auth)
        except Exception:  # noqa: BLE001 - dockerd answers [] here
            return []
        try:
            config = await fetch_config(sess, ref.path, ref.digest or ref.tag, str(ref))
        except InvalidParameter:
            raise
        except Exception:  # noqa: BLE001
            return []
        finally:
            await sess.close()
        return privileges(config)

    async def _fetch(self, ref: Reference, auth: AuthConfig, rootfs: str,
                     events: asyncio.Queue[ProgressEvent | None]) -> Fetched:
        try:
            sess = await self.registry.open_session(ref, auth)
        except Exception as e:  # noqa: BLE001
            raise pull_error(e, ref) from None
        try:
            return await fetch_plugin(sess, ref.path, ref.digest or ref.tag, str(ref),
                                      self.store, rootfs, events.put_nowait)
        except Exception as e:  # noqa: BLE001
            raise pull_error(e, ref) from None
        finally:
            await sess.close()

    async def pull(self, remote: str, name: str | None, granted: list[dict[str, Any]],
                   auth: AuthConfig, done: Done) -> tuple[str, AsyncIterator[ProgressEvent]]:
        """Validate (errors before the stream starts), then the plugin's name and the
        progress stream; the new record goes to `done` (the service saves and announces
        it)."""
        ref = remote_reference(remote)
        local = plugin_name(name) if name else \
            Reference(ref.name, ref.tag or DEFAULT_TAG).familiar()
        self.store.check_name_free(local)

        async def work(rootfs: str, q: asyncio.Queue[ProgressEvent | None]) -> None:
            f = await self._fetch(ref, auth, rootfs, q)
            _granted(privileges(f.config), granted)
            rec = PluginRecord(new_id(), local, f.config, initial_settings(f.config),
                               reference=str(ref), config_digest=f.config_digest,
                               blobsums=f.blobsums, manifest=f.manifest_digest)
            self.store.check_name_free(local)
            await asyncio.to_thread(self._install_rootfs, rec, rootfs)
            await done(rec, "pull")
            q.put_nowait(Status(f"Digest: {f.manifest_digest}"))
            q.put_nowait(Status(f"Status: Downloaded newer image for {ref.familiar()}"))
        return local, self._stream(
            f"{ref.tag or ref.digest}: Pulling from {ref.familiar_name()}", work)

    async def upgrade(self, rec: PluginRecord, remote: str, granted: list[dict[str, Any]],
                      auth: AuthConfig, done: Done) -> AsyncIterator[ProgressEvent]:
        ref = remote_reference(remote)

        async def work(rootfs: str, q: asyncio.Queue[ProgressEvent | None]) -> None:
            f = await self._fetch(ref, auth, rootfs, q)
            _granted(privileges(f.config), granted)
            old = self.store.rootfs(rec.id)
            await asyncio.to_thread(shutil.rmtree, old, True)
            await asyncio.to_thread(os.replace, rootfs, old)
            rec.config, rec.reference = f.config, str(ref)
            rec.config_digest, rec.blobsums, rec.manifest = \
                f.config_digest, f.blobsums, f.manifest_digest
            await done(rec, "pull")
            q.put_nowait(Status(f"Digest: {f.manifest_digest}"))
        return self._stream(f"Upgrading plugin {rec.name} from {rec.reference} to "
                            f"{ref}", work)

    def _install_rootfs(self, rec: PluginRecord, rootfs: str) -> None:
        os.makedirs(self.store.dir(rec.id), mode=0o700)
        os.replace(rootfs, self.store.rootfs(rec.id))

    async def _stream(self, first: str, work: Work) -> AsyncIterator[ProgressEvent]:
        q: asyncio.Queue[ProgressEvent | None] = asyncio.Queue()
        tmp = await asyncio.to_thread(tempfile.mkdtemp, ".rootfs", dir=self.store.tmp_dir())

        async def run() -> None:
            try:
                await work(tmp, q)
            finally:
                q.put_nowait(None)
        task = asyncio.create_task(run())
        try:
            yield Status(first)
            while (ev := await q.get()) is not None:
                yield ev
            try:
                await task
            except DockerError as e:
                yield ErrorEvent(e.message)
        finally:
            await cancel_and_wait(task)      # the client left: the install stops too
            await asyncio.to_thread(shutil.rmtree, tmp, True)

    async def create(self, name: str, body: AsyncIterator[bytes]) -> PluginRecord:
        local = plugin_name(name)
        self.store.check_name_free(local)
        tmp = await asyncio.to_thread(tempfile.mkdtemp, ".create", dir=self.store.tmp_dir())
        try:
            ctx_path = os.path.join(tmp, "context.tar")
            rootfs = os.path.join(tmp, "rootfs")
            os.mkdir(rootfs)
            f = await asyncio.to_thread(open, ctx_path, "wb")
            try:
                async for chunk in body:
                    await asyncio.to_thread(f.write, chunk)
            finally:
                await asyncio.to_thread(f.close)

            def split() -> Any:
                with open(ctx_path, "rb") as src:
                    return split_context(src, self.store, rootfs)
            ctx = await asyncio.to_thread(split)
            config = parse_config(ctx.config)
            config["DockerVersion"] = __version__
            config["rootfs"] = {"type": "layers", "diff_ids": [ctx.diff_id]}
            config_digest = await asyncio.to_thread(
                self.store.put_blob, json.dumps(config).encode())
            rec = PluginRecord(new_id(), local, config, initial_settings(config),
                               reference=local, config_digest=config_digest,
                               blobsums=[ctx.layer_digest])
            self.store.check_name_free(local)
            await asyncio.to_thread(self._install_rootfs, rec, rootfs)
            return rec
        finally:
            await asyncio.to_thread(shutil.rmtree, tmp, True)

    async def push(self, rec: PluginRecord, auth: AuthConfig) -> AsyncIterator[ProgressEvent]:
        ref = parse_normalized(rec.name)
        try:
            sess = await self.registry.open_session(ref, auth, push=True)
        except Exception as e:  # noqa: BLE001
            raise push_error(e) from None
        manifest = await asyncio.to_thread(build_manifest, self.store, rec.config_digest,
                                           rec.blobsums)

        async def work(_tmp: str, q: asyncio.Queue[ProgressEvent | None]) -> None:
            try:
                digest = await push_plugin(sess, ref.path, ref.tag, self.store,
                                           rec.config_digest, rec.blobsums, manifest,
                                           q.put_nowait)
            except Exception as e:  # noqa: BLE001
                raise push_error(e) from None
            finally:
                await sess.close()
            q.put_nowait(Status(f"{ref.tag}: digest: {digest} size: {len(manifest)}"))
            q.put_nowait(PushedDigest(ref.tag, digest, len(manifest)))
        return self._stream(f"The push refers to repository [{ref.familiar_name()}]", work)

