"""Manifests: Docker schema2 and OCI image manifests, manifest lists / OCI indexes,
platform selection. Schema1 is refused."""
from __future__ import annotations

import json
import platform as _platform
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidParameter, NotFound

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws")
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_NONDIST = ("application/vnd.oci.image.layer.nondistributable.v1.tar",
               "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")
LAYER_TYPES = (DOCKER_LAYER_GZIP, OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, DOCKER_FOREIGN,
               *OCI_NONDIST, "application/vnd.docker.image.rootfs.diff.tar")
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST, *SCHEMA1))


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, d: Any) -> Descriptor:
        if not isinstance(d, dict) or not isinstance(d.get("digest"), str):
            raise InvalidParameter("invalid manifest: descriptor without digest")
        try:
            size = int(d.get("size", 0))
        except (TypeError, ValueError):
            raise InvalidParameter("invalid manifest: bad descriptor size") from None
        raw = d.get("platform")
        plat: dict[str, Any] = raw if isinstance(raw, dict) else {}
        return cls(str(d.get("mediaType") or ""), d["digest"], size, plat)

    def to_wire(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class ImageManifest:
    media_type: str
    config: Descriptor
    layers: list[Descriptor]


@dataclass(frozen=True)
class ManifestList:
    media_type: str
    manifests: list[Descriptor]


def media_type_of(body: bytes, content_type: str) -> tuple[str, dict[str, Any]]:
    try:
        doc = json.loads(body)
    except ValueError:
        raise InvalidParameter("invalid manifest: not JSON") from None
    if not isinstance(doc, dict):
        raise InvalidParameter("invalid manifest: not a JSON object")
    mt = doc.get("mediaType") if isinstance(doc.get("mediaType"), str) else ""
    ct = content_type.split(";", 1)[0].strip()
    if not mt:
        if doc.get("schemaVersion") == 1:
            mt = SCHEMA1[0]
        elif "manifests" in doc:
            mt = OCI_INDEX
        elif "config" in doc:
            mt = OCI_MANIFEST if ct != DOCKER_MANIFEST else DOCKER_MANIFEST
        else:
            mt = ct
    return mt, doc


def parse_manifest(body: bytes, content_type: str, name: str) -> ImageManifest | ManifestList:
    mt, doc = media_type_of(body, content_type)
    if mt in SCHEMA1 or doc.get("schemaVersion") == 1:
        raise InvalidParameter(
            f"[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, "
            f"schema 1 support is disabled by default and will be removed in an upcoming "
            f"release. Suggest the author of {name} to upgrade the image to the OCI Format "
            f"or Docker Image manifest v2, schema 2.")
    if mt in (DOCKER_LIST, OCI_INDEX):
        items = doc.get("manifests")
        if not isinstance(items, list):
            raise InvalidParameter("invalid manifest list: no manifests")
        return ManifestList(mt, [Descriptor.parse(m) for m in items])
    if mt in (DOCKER_MANIFEST, OCI_MANIFEST):
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise InvalidParameter("invalid manifest: no layers")
        return ImageManifest(mt, Descriptor.parse(doc.get("config")),
                             [Descriptor.parse(layer) for layer in layers])
    raise InvalidParameter(f"unsupported manifest media type: {mt or content_type!r}")


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
         "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def host_platform() -> Platform:
    m = _platform.machine()
    arch = _ARCH.get(m, m)
    return Platform("linux", arch, "v8" if arch == "arm64" else ("v7" if arch == "arm" else ""))


def parse_platform(spec: str | None) -> Platform | None:
    """The `platform` query parameter: os[/arch[/variant]] (or arch alone)."""
    if not spec:
        return None
    parts = spec.strip().lower().split("/")
    if len(parts) > 3 or not all(parts):
        raise InvalidParameter(f'"{spec}": unknown operating system or architecture: '
                               f"invalid argument")
    if len(parts) == 1:
        parts = (["linux", parts[0]] if parts[0] in _ARCH.values() else [parts[0]])
    os_, arch = parts[0], parts[1] if len(parts) > 1 else host_platform().architecture
    arch = _ARCH.get(arch, arch)
    variant = parts[2] if len(parts) > 2 else ""
    return Platform(os_, arch, variant)


def _variant_ok(wanted: Platform, have: str) -> bool:
    if not wanted.variant:
        return True
    if wanted.architecture == "arm64" and wanted.variant == "v8":
        return have in ("", "v8")
    return have == wanted.variant


def select(lst: ManifestList, wanted: Platform) -> Descriptor:
    for d in lst.manifests:
        p = d.platform
        if (p.get("os") or "") == wanted.os and \
                _ARCH.get(p.get("architecture") or "", p.get("architecture")) == \
                wanted.architecture and _variant_ok(wanted, str(p.get("variant") or "")):
            return d
    raise NotFound(f"no matching manifest for {wanted} in the manifest list entries")


def config_platform(config: dict[str, Any]) -> Platform:
    return Platform(str(config.get("os") or ""), str(config.get("architecture") or ""),
                    str(config.get("variant") or ""))
