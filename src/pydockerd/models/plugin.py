"""Managed plugin request bodies (/plugins/pull, /upgrade, /set)."""
from __future__ import annotations

from typing import ClassVar

from .base import Model


class PluginPrivilege(Model, frozen=True):
    """types.PluginPrivilege: one privilege the client grants (GET /plugins/privileges
    lists what a plugin needs)."""
    go_type: ClassVar[str] = "types.PluginPrivilege"
    Name: str | None = None
    Description: str | None = None
    Value: list[str] | None = None


PluginPrivileges = list[PluginPrivilege]
PluginSetArgs = list[str]
