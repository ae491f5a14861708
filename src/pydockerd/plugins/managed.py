"""Managed plugins (`docker plugin`, the /plugins API): plugins distributed as images
and run by the engine. pydockerd cannot install them yet, so none is ever installed:
listing answers the truth (none), looking one up is dockerd's 404, and installing,
creating or upgrading is a clear 501."""
from __future__ import annotations

from typing import NoReturn

from ..errors import InvalidParameter, NotFound, NotImplementedErr
from ..util.filters import filter_bool

_FILTERS = {"enabled", "capability"}          # moby's acceptedPluginFilterTags
UNSUPPORTED = ("managed plugins (docker plugin install/create/upgrade) are not supported "
               "by pydockerd yet; legacy plugins found by their socket or spec file are")


class ManagedPlugins:
    """The (empty) set of managed plugins."""

    def list(self, filters: dict[str, list[str]]) -> list[object]:
        for key, values in filters.items():
            if key not in _FILTERS:
                raise InvalidParameter(f"Invalid filter '{key}'")
            if key == "enabled":
                for v in values:
                    filter_bool(key, v)
        return []

    def get(self, name: str) -> object:
        raise NotFound(f'plugin "{name}" not found')

    def install(self) -> NoReturn:
        raise NotImplementedErr(UNSUPPORTED)
