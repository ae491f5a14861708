"""Docker's JSON for volumes (volume.Volume, the list and prune responses), from
the volumes area's dataclasses. Volume.to_dict is the store's document, not this."""
from __future__ import annotations

from typing import Any

from ..volumes import Volume, VolumeUsage


def volume(v: Volume, usage: VolumeUsage | None = None) -> dict[str, Any]:
    """GET /volumes/{name}, POST /volumes/create, and a /system/df entry (with usage)."""
    doc: dict[str, Any] = {
        "CreatedAt": v.created_at, "Driver": v.driver, "Labels": v.labels,
        "Mountpoint": v.mountpoint, "Name": v.name, "Options": v.options, "Scope": v.scope,
    }
    if v.status:
        doc["Status"] = v.status
    if usage is not None:
        doc["UsageData"] = {"Size": usage.size, "RefCount": usage.ref_count}
    return doc


def volume_list(vols: list[Volume], warnings: list[str] | None = None) -> dict[str, Any]:
    """GET /volumes (Warnings: volume plugins that could not list their volumes)."""
    return {"Volumes": [volume(v) for v in vols], "Warnings": warnings or None}


def prune_report(deleted: list[str], reclaimed: int) -> dict[str, Any]:
    """POST /volumes/prune."""
    return {"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}


__all__ = ["volume", "volume_list", "prune_report"]
