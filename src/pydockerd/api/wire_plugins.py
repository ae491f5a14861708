"""Docker's JSON for managed plugins (types.Plugin): GET /plugins, /plugins/{name}/json."""
from __future__ import annotations

from typing import Any

from ..plugins.managed import PluginRecord


def plugin(r: PluginRecord) -> dict[str, Any]:
    s = r.settings
    return {"Config": r.config, "Enabled": r.enabled, "Id": r.id, "Name": r.name,
            "PluginReference": r.reference,
            "Settings": {"Args": s["Args"], "Devices": s["Devices"], "Env": s["Env"],
                         "Mounts": s["Mounts"]}}


def plugin_list(rs: list[PluginRecord]) -> list[dict[str, Any]]:
    return [plugin(r) for r in rs]
