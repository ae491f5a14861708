"""`docker save`: images as a tar with Docker's manifest.json and an OCI layout.

The archive is what Docker 25+ writes, so `docker load` of any Docker (and
ours) reads it, and skopeo/containerd read the OCI side:

    blobs/sha256/<hex>   image configs (byte for byte as stored: same image id),
                         OCI manifests, and the layers as *uncompressed* tars
                         whose digest is the config's diff id (rebuilt exactly
                         from the layer dir by tar-split, see tarsplit.py)
    index.json           one manifest descriptor per (image, tag), annotated with
                         io.containerd.image.name / org.opencontainers.image.ref.name
    manifest.json        [{"Config", "RepoTags", "Layers"}] (Docker's own format)
    repositories         the legacy {"repo": {"tag": "<id hex>"}}
    oci-layout           {"imageLayoutVersion": "1.0.0"}

Blocking: runs in a worker thread writing to a ThreadPipe (streaming.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol, TYPE_CHECKING

from .content import ContentStore, digest_of
from .layers import LayerStore, hex_of
from .model import Image
from .references import Reference
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import tarfile
else:   # loaded on first use: an idle daemon never needs it (issue 10)
    tarfile = lazy_import("tarfile")

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
_BLOCK = 512


class Writer(Protocol):
    def write(self, b: bytes) -> int: ...


@dataclass
class SaveItem:
    image: Image
    refs: list[Reference] = field(default_factory=list)     # tags to record, in order


def _header(name: str, size: int, is_dir: bool = False) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.size = 0 if is_dir else size
    ti.mode = 0o755 if is_dir else 0o644
    ti.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    ti.mtime = 0
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _pad(out: Writer, size: int) -> None:
    if size % _BLOCK:
        out.write(b"\0" * (_BLOCK - size % _BLOCK))


def _file(out: Writer, name: str, data: bytes) -> None:
    out.write(_header(name, len(data)))
    out.write(data)
    _pad(out, len(data))


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def write_archive(out: Writer, items: list[SaveItem], content: ContentStore,
                  layers: LayerStore) -> None:
    written: set[str] = set()
    out.write(_header("blobs", 0, True))
    out.write(_header("blobs/sha256", 0, True))

    def blob(digest: str, data: bytes) -> None:
        if digest not in written:
            written.add(digest)
            _file(out, "blobs/sha256/" + hex_of(digest), data)

    manifest_json: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for item in items:
        img = item.image
        config = content.get(img.id)
        blob(img.id, config)
        layer_descs: list[dict[str, Any]] = []
        layer_names: list[str] = []
        for chain in img.layers:
            replay = layers.replay(chain)
            digest, size = replay.expected, replay.split.size
            if digest not in written:
                written.add(digest)
                out.write(_header("blobs/sha256/" + hex_of(digest), size))
                for chunk in replay.chunks():
                    out.write(chunk)
                _pad(out, size)
            layer_descs.append({"mediaType": MT_LAYER, "digest": digest, "size": size})
            layer_names.append("blobs/sha256/" + hex_of(digest))
        manifest = _json({"schemaVersion": 2, "mediaType": MT_MANIFEST,
                          "config": {"mediaType": MT_CONFIG, "digest": img.id,
                                     "size": len(config)},
                          "layers": layer_descs})
        manifest_digest = digest_of(manifest)
        blob(manifest_digest, manifest)
        desc = {"mediaType": MT_MANIFEST, "digest": manifest_digest, "size": len(manifest)}
        tags = [r for r in item.refs if r.tag and not r.digest]
        if not tags:
            index.append(desc)
        for ref in tags:
            index.append({**desc, "annotations": {
                "io.containerd.image.name": str(ref),
                "org.opencontainers.image.ref.name": ref.tag}})
            repositories.setdefault(ref.familiar_name(), {})[ref.tag] = hex_of(img.id)
        manifest_json.append({
            "Config": "blobs/sha256/" + hex_of(img.id),
            "RepoTags": [r.familiar() for r in tags] or None,
            "Layers": layer_names})
    _file(out, "index.json", _json({"schemaVersion": 2, "mediaType": MT_INDEX,
                                    "manifests": index}))
    _file(out, "manifest.json", _json(manifest_json))
    _file(out, "oci-layout", _json({"imageLayoutVersion": "1.0.0"}))
    if repositories:
        _file(out, "repositories", _json(repositories))
    out.write(b"\0" * (2 * _BLOCK))
