"""Layer tars and `docker save` archives, written byte for byte reproducibly.

Self-contained on purpose: these archives are the fixtures the daemon's own
image code (content store, loader, tar-split) is tested against, so none of
that code is used to make them.

An archive holds both the OCI image layout (oci-layout, index.json,
blobs/sha256/...) and Docker's manifest.json, as `docker save` writes since
Docker 25, so `docker load -i FILE` accepts it on any daemon.
"""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

EPOCH = 1700000000                    # every mtime, so digests are reproducible
CREATED = "2023-11-14T22:13:20Z"      # EPOCH in RFC 3339
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, size: int = 0,
           linkname: str = "", owner: tuple[int, int] = (0, 0)) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, linkname
    info.mtime, info.uid, info.gid = EPOCH, *owner
    info.uname, info.gname = ("root", "root") if owner == (0, 0) else ("", "")
    return info


class LayerTar:
    """An uncompressed layer tar built in memory; entries stay in insertion order, all
    owned by `owner` (uid, gid; root unless a test that runs without root says so)."""

    def __init__(self, owner: tuple[int, int] = (0, 0)) -> None:
        self.owner = owner
        self._buf = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buf, mode="w", format=tarfile.PAX_FORMAT)

    def dir(self, path: str, mode: int = 0o755) -> None:
        self._tar.addfile(_entry(path, tarfile.DIRTYPE, mode, owner=self.owner))

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._tar.addfile(_entry(path, mode=mode, size=len(data), owner=self.owner),
                          io.BytesIO(data))

    def symlink(self, path: str, target: str) -> None:
        self._tar.addfile(_entry(path, tarfile.SYMTYPE, 0o777, linkname=target,
                                 owner=self.owner))

    def whiteout(self, path: str) -> None:
        """Delete `path` of a lower layer (an empty `.wh.<name>` file beside it)."""
        parent, _, name = path.rpartition("/")
        self.file(f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else WHITEOUT_PREFIX + name, b"")

    def opaque(self, path: str) -> None:
        """Hide everything lower layers put in the directory `path`."""
        self.file(f"{path}/{OPAQUE_MARKER}", b"")

    def finish(self) -> bytes:
        """Close the tar (end blocks) and return its bytes; the layer is then done."""
        self._tar.close()
        return self._buf.getvalue()


def split_tag(tag: str) -> tuple[str, str]:
    """"repo[:tag]" -> (repo, tag), "latest" by default; a registry port is no tag."""
    repo, sep, ref = tag.rpartition(":")
    if not sep or "/" in ref:
        return tag, "latest"
    return repo, ref


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _blob_path(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


def image_config(diff_ids: Sequence[str], config: Mapping[str, Any], architecture: str,
                 ) -> bytes:
    """The image config JSON (its digest is the image id)."""
    return _compact({
        "architecture": architecture, "os": "linux", "created": CREATED,
        "config": dict(config),
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [{"created": CREATED, "created_by": f"mkimage layer {i}"}
                    for i in range(len(diff_ids))],
    })


def write_archive(out: Path, tag: str, layers: Sequence[bytes], config: Mapping[str, Any],
                  architecture: str = "amd64", compress: bool = False) -> str:
    """Write a `docker save` tar of one image to `out`; return the image id.

    Layers go in uncompressed, named by diff id, as Docker 25 saves them;
    `compress` gzips the whole archive (docker load accepts both)."""
    repo, ref = split_tag(tag)
    name = f"{repo}:{ref}"
    diff_ids = [sha256_digest(b) for b in layers]
    cfg = image_config(diff_ids, config, architecture)
    manifest = _compact({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(cfg), "size": len(cfg)},
        "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": len(b)}
                   for d, b in zip(diff_ids, layers)],
    })
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": sha256_digest(manifest), "size": len(manifest),
        "annotations": {"io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": ref}}]}
    docker_manifest = [{"Config": _blob_path(sha256_digest(cfg)), "RepoTags": [name],
                        "Layers": [_blob_path(d) for d in diff_ids]}]
    blobs: dict[str, bytes] = {}                     # digest -> bytes, first one wins
    for digest, data in [(sha256_digest(cfg), cfg), (sha256_digest(manifest), manifest),
                         *zip(diff_ids, layers)]:
        blobs.setdefault(digest, data)

    tar = tarfile.open(out, "w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) if compress \
        else tarfile.open(out, "w", format=tarfile.PAX_FORMAT)
    with tar:
        for d in ("blobs", "blobs/sha256"):
            tar.addfile(_entry(d, tarfile.DIRTYPE, 0o755))
        files = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                 *((_blob_path(d), b) for d, b in blobs.items()),
                 ("index.json", json.dumps(index, sort_keys=True).encode()),
                 ("manifest.json", json.dumps(docker_manifest).encode())]
        for path, data in files:
            tar.addfile(_entry(path, size=len(data)), io.BytesIO(data))
    return sha256_digest(cfg)
