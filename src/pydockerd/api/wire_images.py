"""Docker's JSON (PascalCase) for images: inspect, summary, history, df, rmi/prune
records, from the images area's dataclasses; the API-version differences live here."""
from __future__ import annotations

from typing import Any

from ..images.model import DeleteRecord, DiskUsage, GraphDriver, HistoryEntry, Image
from ..util.ids import ZERO_TIME, to_unix
from .version import API_VERSION, ApiVersion

LATEST: ApiVersion = API_VERSION

# the OCI image config's runtime fields, in Docker's order (omitempty from API 1.50)
_OCI_CONFIG_KEYS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
                    "Labels", "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell")


def config_to_wire(cfg: dict[str, Any], api_version: ApiVersion = LATEST) -> dict[str, Any]:
    """The image's runtime config: the OCI form (>= 1.50) or the legacy container.Config."""
    if api_version >= (1, 50):
        return {k: cfg[k] for k in _OCI_CONFIG_KEYS if cfg.get(k) not in (None, "", [], {})}
    out: dict[str, Any] = {
        "Hostname": cfg.get("Hostname", ""), "Domainname": cfg.get("Domainname", ""),
        "User": cfg.get("User", ""), "AttachStdin": False, "AttachStdout": False,
        "AttachStderr": False,
    }
    if cfg.get("ExposedPorts"):
        out["ExposedPorts"] = cfg["ExposedPorts"]
    out.update({"Tty": False, "OpenStdin": False, "StdinOnce": False,
                "Env": cfg.get("Env"), "Cmd": cfg.get("Cmd")})
    for k in ("Healthcheck", "ArgsEscaped"):
        if cfg.get(k):
            out[k] = cfg[k]
    out.update({"Image": cfg.get("Image", ""), "Volumes": cfg.get("Volumes"),
                "WorkingDir": cfg.get("WorkingDir", ""), "Entrypoint": cfg.get("Entrypoint"),
                "OnBuild": cfg.get("OnBuild"), "Labels": cfg.get("Labels")})
    for k in ("StopSignal", "StopTimeout", "Shell"):
        if cfg.get(k):
            out[k] = cfg[k]
    return out


def graph_driver(gd: GraphDriver) -> dict[str, Any]:
    return {"Name": gd.name, "Data": dict(gd.data)}


def image_to_wire(img: Image, driver: GraphDriver | None = None,
                  api_version: ApiVersion = LATEST) -> dict[str, Any]:
    """GET /images/{name}/json. driver: ImageService.image_graph_driver(img)."""
    c = img.config
    out: dict[str, Any] = {
        "Id": img.id,
        "RepoTags": list(img.repo_tags),
        "RepoDigests": list(img.repo_digests),
        "Parent": img.parent,
        "Comment": c.get("comment", ""),
        "Created": img.created or ZERO_TIME,
    }
    if api_version < (1, 45):
        out["Container"] = c.get("container", "")
        out["ContainerConfig"] = config_to_wire(c.get("container_config") or {}, (1, 49))
    out.update({
        "DockerVersion": c.get("docker_version", ""),
        "Author": c.get("author", ""),
        "Config": config_to_wire(img.container_config, api_version),
        "Architecture": c.get("architecture", ""),
    })
    if c.get("variant"):
        out["Variant"] = c["variant"]
    out["Os"] = c.get("os", "")
    if c.get("os.version"):
        out["OsVersion"] = c["os.version"]
    out["Size"] = img.size
    if api_version < (1, 44):
        out["VirtualSize"] = img.size
    out["GraphDriver"] = graph_driver(driver or GraphDriver("overlay2", {}))
    out["RootFS"] = {"Type": (c.get("rootfs") or {}).get("type", "layers"),
                     "Layers": img.diff_ids}
    out["Metadata"] = {"LastTagTime": img.last_tag_time or ZERO_TIME}
    return out


def image_summary(img: Image, api_version: ApiVersion = LATEST, shared_size: int = -1,
                  containers: int = -1) -> dict[str, Any]:
    """One entry of GET /images/json."""
    tags, digests = list(img.repo_tags), list(img.repo_digests)
    if api_version < (1, 43) and not tags and not digests:
        tags, digests = ["<none>:<none>"], ["<none>@<none>"]
    out: dict[str, Any] = {
        "Containers": containers,
        "Created": int(to_unix(img.created)),
        "Id": img.id,
        "Labels": img.labels or None,
        "ParentId": img.parent,
        "RepoDigests": digests,
        "RepoTags": tags,
        "SharedSize": shared_size,
        "Size": img.size,
    }
    if api_version < (1, 44):
        out["VirtualSize"] = img.size
    return out


def history_to_wire(entries: list[HistoryEntry]) -> list[dict[str, Any]]:
    return [{"Id": e.id, "Created": e.created, "CreatedBy": e.created_by, "Tags": e.tags,
             "Size": e.size, "Comment": e.comment} for e in entries]


def disk_usage(du: DiskUsage, api_version: ApiVersion = LATEST) -> dict[str, Any]:
    """The images part of GET /system/df: {"LayersSize", "Images"}."""
    return {"LayersSize": du.layers_size,
            "Images": [image_summary(u.image, api_version, u.shared_size, u.containers)
                       for u in du.images]}


def delete_records(records: list[DeleteRecord]) -> list[dict[str, str]]:
    """DELETE /images/{name}: [{"Untagged": ref} | {"Deleted": id}, ...]."""
    return [{"Untagged": r.untagged} if r.untagged else {"Deleted": r.deleted}
            for r in records]


def prune_report(records: list[DeleteRecord], reclaimed: int) -> dict[str, Any]:
    """POST /images/prune."""
    return {"ImagesDeleted": delete_records(records) or None, "SpaceReclaimed": reclaimed}
