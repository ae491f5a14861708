"""Reading `docker save` archives: Docker's manifest.json and/or an OCI layout.

`read_archive` only parses and validates (configs, layer lists, names); the
service then unpacks layers and commits. Nothing here writes to disk.
Blocking: call from a worker thread.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import zlib
from dataclasses import dataclass, field
from typing import Any, IO, TYPE_CHECKING

from ..errors import InvalidParameter
from .content import digest_of
from .references import Reference, try_parse
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import gzip
    import tarfile
else:   # loaded on first use: an idle daemon never needs it (issue 10)
    gzip = lazy_import("gzip")
    tarfile = lazy_import("tarfile")

MAX_JSON = 64 << 20


@dataclass
class ArchiveImage:
    """One image found in an archive, validated but not yet imported."""

    config_bytes: bytes
    config: dict[str, Any]
    image_id: str
    layer_members: list[str]        # archive member names of the layer tars, base first
    diff_ids: list[str]
    refs: list[Reference] = field(default_factory=list)


def ensure_plain_tar(path: str) -> str:
    """If path is gzip-compressed, decompress it beside itself; return the tar's path.

    The compressed file is removed once decompressed.
    """
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic != b"\x1f\x8b":
        return path
    plain = path + ".tar"
    try:
        with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except (OSError, EOFError, zlib.error) as e:
        if os.path.exists(plain):
            os.unlink(plain)
        if isinstance(e, OSError) and e.errno is not None:
            raise
        raise InvalidParameter(f"invalid archive: {e}") from e
    os.unlink(path)
    return plain


def open_tar(path: str) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:")
    except tarfile.TarError as e:
        raise InvalidParameter(f"invalid archive: {e}") from e


def member_file(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    """A regular file of the archive by name (links resolved inside the archive)."""
    name = name.lstrip("/")
    if name.startswith("./"):
        name = name[2:]
    try:
        f = tar.extractfile(name)
    except KeyError:
        f = None
    except tarfile.TarError as e:
        raise InvalidParameter(f"invalid archive: {e}") from e
    if f is None:
        raise InvalidParameter(f"invalid archive: {name} not found or not a file")
    return f


def _read_json(tar: tarfile.TarFile, name: str) -> tuple[bytes, Any]:
    f = member_file(tar, name)
    data = f.read(MAX_JSON + 1)
    if len(data) > MAX_JSON:
        raise InvalidParameter(f"invalid archive: {name} is too large")
    try:
        return data, json.loads(data)
    except ValueError as e:
        raise InvalidParameter(f"invalid archive: {name}: {e}") from e


def _names(tar: tarfile.TarFile) -> set[str]:
    out = set()
    for n in tar.getnames():
        n = n.lstrip("/")
        out.add(n[2:] if n.startswith("./") else n)
    return out


def _blob_name(digest: str) -> str:
    algo, _, hexpart = str(digest).partition(":")
    if not algo.isalnum() or not hexpart.isalnum():
        raise InvalidParameter(f"invalid archive: bad digest {digest!r}")
    return f"blobs/{algo}/{hexpart}"


def validate_config(config_bytes: bytes, config: Any, n_layers: int | None, where: str
                    ) -> list[str]:
    if not isinstance(config, dict):
        raise InvalidParameter(f"invalid archive: image config {where} is not an object")
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise InvalidParameter(f"invalid archive: image config {where} has no layers rootfs")
    diff_ids = rootfs.get("diff_ids") or []
    if not isinstance(diff_ids, list) or not all(
            isinstance(d, str) and d.startswith("sha256:") and len(d) == 71 for d in diff_ids):
        raise InvalidParameter(f"invalid archive: image config {where} has bad diff_ids")
    if n_layers is not None and len(diff_ids) != n_layers:
        raise InvalidParameter(
            f"invalid archive: image config {where} lists {len(diff_ids)} layers, "
            f"the manifest {n_layers}")
    return list(diff_ids)


def _from_docker_manifest(tar: tarfile.TarFile, manifest: Any) -> list[ArchiveImage]:
    if not isinstance(manifest, list):
        raise InvalidParameter("invalid archive: manifest.json is not a list")
    images = []
    for entry in manifest:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise InvalidParameter("invalid archive: bad manifest.json entry")
        layers = entry.get("Layers") or []
        if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
            raise InvalidParameter("invalid archive: bad Layers in manifest.json")
        cfg_bytes, cfg = _read_json(tar, entry["Config"])
        diff_ids = validate_config(cfg_bytes, cfg, len(layers), entry["Config"])
        refs = []
        for t in entry.get("RepoTags") or []:
            ref = try_parse(str(t))
            if ref is None or ref.digest:
                raise InvalidParameter(f"invalid archive: invalid tag {t!r}")
            refs.append(ref.with_default_tag())
        images.append(ArchiveImage(cfg_bytes, cfg, digest_of(cfg_bytes), list(layers),
                                   diff_ids, refs))
    return images


def _host_platform() -> tuple[str, str]:
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
    return "linux", arch.get(platform.machine(), platform.machine())


def _pick_manifest(tar: tarfile.TarFile, index: Any, depth: int = 0) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(descriptor with annotations, manifest) pairs of an OCI index, nested indexes resolved."""
    if depth > 4 or not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidParameter("invalid archive: bad OCI index")
    out = []
    host = _host_platform()
    for desc in index["manifests"]:
        if not isinstance(desc, dict):
            raise InvalidParameter("invalid archive: bad OCI descriptor")
        _, doc = _read_json(tar, _blob_name(desc.get("digest", "")))
        mt = desc.get("mediaType") or (doc.get("mediaType") if isinstance(doc, dict) else "")
        if isinstance(doc, dict) and ("manifests" in doc or str(mt).endswith(
                ("image.index.v1+json", "manifest.list.v2+json"))):
            subs = doc.get("manifests") or []
            chosen = [d for d in subs if isinstance(d, dict) and
                      (d.get("platform") or {}).get("os") == host[0] and
                      (d.get("platform") or {}).get("architecture") == host[1]]
            sub_index = {"manifests": (chosen or subs)[:1]}
            for sub_desc, man in _pick_manifest(tar, sub_index, depth + 1):
                merged = dict(sub_desc)
                merged["annotations"] = {**(sub_desc.get("annotations") or {}),
                                         **(desc.get("annotations") or {})}
                out.append((merged, man))
        else:
            out.append((desc, doc))
    return out


def _from_oci_index(tar: tarfile.TarFile, index: Any) -> list[ArchiveImage]:
    images: dict[str, ArchiveImage] = {}
    for desc, man in _pick_manifest(tar, index):
        if not isinstance(man, dict) or not isinstance(man.get("config"), dict):
            raise InvalidParameter("invalid archive: bad OCI manifest")
        layers = [_blob_name(layer.get("digest", "")) for layer in man.get("layers") or []
                  if isinstance(layer, dict)]
        cfg_name = _blob_name(man["config"].get("digest", ""))
        cfg_bytes, cfg = _read_json(tar, cfg_name)
        diff_ids = validate_config(cfg_bytes, cfg, len(layers), cfg_name)
        image_id = digest_of(cfg_bytes)
        img = images.setdefault(image_id, ArchiveImage(cfg_bytes, cfg, image_id, layers,
                                                       diff_ids))
        ann = desc.get("annotations") or {}
        for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
            name = ann.get(key)
            if not isinstance(name, str) or not name:
                continue
            ref = try_parse(name)
            # a bare ref.name annotation ("latest") is only a tag, not a name
            if ref is not None and not ref.digest and ("/" in name or ":" in name):
                ref = ref.with_default_tag()
                if ref not in img.refs:
                    img.refs.append(ref)
                break
    return list(images.values())


def read_archive(tar: tarfile.TarFile) -> list[ArchiveImage]:
    """Parse and validate every image of the archive (Docker manifest preferred)."""
    names = _names(tar)
    if "manifest.json" in names:
        _, manifest = _read_json(tar, "manifest.json")
        images = _from_docker_manifest(tar, manifest)
    elif "index.json" in names:
        _, index = _read_json(tar, "index.json")
        images = _from_oci_index(tar, index)
    else:
        raise InvalidParameter("invalid archive: no manifest.json or index.json found "
                               "(not a docker save archive)")
    for img in images:
        for layer in img.layer_members:
            member_file(tar, layer)         # every layer present before anything is unpacked
    return images
