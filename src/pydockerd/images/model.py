"""Image and layer models (snake_case; the wire form lives in api/wire_images.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class LayerInfo:
    """One unpacked layer in layers/<chain-hex>/ (its meta.json and store record)."""

    chain_id: str          # sha256:<hex>
    diff_id: str           # sha256:<hex> of the uncompressed layer tar
    parent: str            # parent chain id, "" for a base layer
    size: int              # bytes of file content in the layer
    link: str              # short id: layers/l/<link> -> ../<chain-hex>/diff

    def to_doc(self) -> dict[str, Any]:
        return {"chain_id": self.chain_id, "diff_id": self.diff_id, "parent": self.parent,
                "size": self.size, "link": self.link}

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> LayerInfo:
        return cls(d["chain_id"], d["diff_id"], d.get("parent", ""), int(d.get("size", 0)),
                   d.get("link", ""))


@dataclass(slots=True)
class Image:
    id: str                              # sha256:<hex> = digest of the config blob
    config: dict[str, Any]               # the full OCI/Docker image config JSON
    layers: list[str]                    # chain ids, base first
    size: int = 0                        # sum of the layers' sizes
    parent: str = ""
    repo_tags: list[str] = field(default_factory=list)      # familiar: busybox:latest
    repo_digests: list[str] = field(default_factory=list)   # familiar: busybox@sha256:...
    last_tag_time: str = ""              # RFC3339, "" = never tagged

    # --- views on the config -------------------------------------------------
    @property
    def created(self) -> str:
        return str(self.config.get("created") or "")

    @property
    def container_config(self) -> dict[str, Any]:
        """The runtime defaults (Cmd, Env, ...), Docker-cased as in the config."""
        c = self.config.get("config")
        return c if isinstance(c, dict) else {}

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.container_config.get("Labels") or {})

    @property
    def diff_ids(self) -> list[str]:
        return list((self.config.get("rootfs") or {}).get("diff_ids") or [])

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[-1][:12]

    def to_doc(self) -> dict[str, Any]:
        return {"id": self.id, "config": self.config, "layers": self.layers, "size": self.size,
                "parent": self.parent, "last_tag_time": self.last_tag_time}

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> Image:
        return cls(d["id"], d["config"], list(d.get("layers") or []), int(d.get("size", 0)),
                   d.get("parent", ""), last_tag_time=d.get("last_tag_time", ""))


@dataclass(slots=True)
class ImageUsage:
    """One image's line in /system/df."""

    image: Image
    shared_size: int
    containers: int


@dataclass(slots=True)
class DiskUsage:
    layers_size: int
    images: list[ImageUsage]


@dataclass(slots=True)
class HistoryEntry:
    """One line of GET /images/{name}/history, newest first."""

    id: str                 # image id, or "<missing>"
    created: int            # unix seconds
    created_by: str
    tags: list[str] | None
    size: int
    comment: str


@dataclass(frozen=True, slots=True)
class DeleteRecord:
    """One step of `docker rmi` / image prune: a reference untagged or an image
    (or layer) deleted; exactly one of the two is set."""

    untagged: str = ""
    deleted: str = ""


@dataclass(frozen=True, slots=True)
class GraphDriver:
    """The storage driver's name and its directories for an image or container
    (overlay2: LowerDir, MergedDir, UpperDir, WorkDir)."""

    name: str
    data: dict[str, str]
