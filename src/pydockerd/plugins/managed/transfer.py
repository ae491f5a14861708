"""Plugin images to and from a registry, with the distribution package's pieces
(sessions, endpoints and auth from DistributionService.open_session, manifest and blob
fetches, verified downloads with dockerd's retries): a plugin image is a schema2
manifest whose config has media type application/vnd.docker.plugin.v1+json and whose
layers are the rootfs (gzip tars), as moby's plugin/distribution code pushes them."""
from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...distribution.blobupload import blob_exists, upload_bytes
from ...distribution.client import RegistrySession, registry_error
from ...distribution.download import download_blob
from ...distribution.manifest import (DOCKER_LAYER_GZIP, DOCKER_MANIFEST, Descriptor,
                                      ImageManifest, ManifestList, host_platform,
                                      parse_manifest, select)
from ...distribution.pull import fetch_blob_bytes, fetch_manifest, short
from ...errors import InvalidParameter
from ...images.applylayer import apply_layer
from ...progress import LayerStatus, ProgressEvent
from .config import MEDIA_TYPE, parse_config
from .state import PluginStore

Emit = Callable[[ProgressEvent], None]
DOWNLOAD_ATTEMPTS = 5


@dataclass
class Fetched:
    config: dict[str, Any]
    config_digest: str
    manifest_digest: str
    blobsums: list[str]


async def _plugin_manifest(sess: RegistrySession, repo: str, reference: str, name: str
                           ) -> tuple[ImageManifest, bytes, str]:
    body, ctype, digest = await fetch_manifest(sess, repo, reference)
    m = parse_manifest(body, ctype, name)
    if isinstance(m, ManifestList):
        body, ctype, digest = await fetch_manifest(sess, repo,
                                                   select(m, host_platform()).digest)
        m = parse_manifest(body, ctype, name)
    if not isinstance(m, ImageManifest) or m.config.media_type != MEDIA_TYPE:
        raise InvalidParameter(f"did not find plugin config for specified reference {name}")
    return m, body, digest


async def fetch_config(sess: RegistrySession, repo: str, reference: str, name: str
                       ) -> dict[str, Any]:
    """The plugin's config alone (GET /plugins/privileges)."""
    m, _, _ = await _plugin_manifest(sess, repo, reference, name)
    return parse_config(await fetch_blob_bytes(sess, repo, m.config))


async def fetch_plugin(sess: RegistrySession, repo: str, reference: str, name: str,
                       store: PluginStore, rootfs: str, emit: Emit) -> Fetched:
    """Manifest, config and layers into the blob store; the layers unpacked in order
    into `rootfs` (an empty directory)."""
    m, body, digest = await _plugin_manifest(sess, repo, reference, name)
    config_bytes = await fetch_blob_bytes(sess, repo, m.config)
    config = parse_config(config_bytes)
    await asyncio.to_thread(store.put_blob, config_bytes)
    await asyncio.to_thread(store.put_blob, body)
    tmp = store.tmp_dir()
    for desc in m.layers:
        lid = short(desc.digest)
        part = os.path.join(tmp, f"blob-{desc.digest.split(':', 1)[-1]}")
        emit(LayerStatus(lid, "Pulling fs layer"))
        await download_blob(sess, repo, desc, part, lid, emit, DOWNLOAD_ATTEMPTS)
        emit(LayerStatus(lid, "Extracting"))

        def unpack(part: str = part, desc: Descriptor = desc) -> None:
            with open(part, "rb") as f:
                apply_layer(f, rootfs)
            store.adopt_blob(part, desc.digest)
        await asyncio.to_thread(unpack)
        emit(LayerStatus(lid, "Pull complete"))
    return Fetched(config, m.config.digest, digest, [d.digest for d in m.layers])


def build_manifest(store: PluginStore, config_digest: str, blobsums: list[str]) -> bytes:
    """moby's buildManifest: schema2, the plugin config, gzip layers."""
    def desc(mt: str, digest: str) -> dict[str, Any]:
        return {"mediaType": mt, "size": os.path.getsize(store.blob_path(digest)),
                "digest": digest}
    return json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                       "config": desc(MEDIA_TYPE, config_digest),
                       "layers": [desc(DOCKER_LAYER_GZIP, b) for b in blobsums]}).encode()


async def push_plugin(sess: RegistrySession, repo: str, tag: str, store: PluginStore,
                      config_digest: str, blobsums: list[str], manifest: bytes,
                      emit: Emit) -> str:
    """Blobs (skipping those the registry has), then the manifest; its digest."""
    for digest in [*blobsums, config_digest]:
        sid = short(digest)
        emit(LayerStatus(sid, "Preparing"))
        if await blob_exists(sess, repo, digest):
            emit(LayerStatus(sid, "Layer already exists"))
            continue
        data = await asyncio.to_thread(store.read_blob, digest)
        await upload_bytes(sess, repo, digest, data)
        emit(LayerStatus(sid, "Pushed"))
    resp = await sess.request("PUT", f"/v2/{repo}/manifests/{tag}", data=manifest,
                              headers={"Content-Type": DOCKER_MANIFEST})
    async with resp:
        if resp.status not in (200, 201):
            raise await registry_error(resp)
    return await asyncio.to_thread(store.put_blob, manifest)
