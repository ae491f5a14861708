"""`GET /networks` filters (name, id, driver, type, label, scope, dangling). Pure logic."""
from __future__ import annotations

import re
from typing import Callable

from ..errors import InvalidParameter
from ..util.ids import to_unix
from .model import Network
from ..util.filters import filter_bool, labels_match

ACCEPTED = ("dangling", "driver", "id", "label", "name", "scope", "type")


def _match(pattern: str, value: str) -> bool:
    """Docker's filters.Match: a regular expression search, falling back to substring."""
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return pattern in value


def validate(filters: dict[str, list[str]]) -> None:
    for key, values in filters.items():
        if key not in ACCEPTED:
            raise InvalidParameter(f"invalid filter '{key}'")
        if key == "type":
            for v in values:
                if v not in ("custom", "builtin"):
                    raise InvalidParameter(f"invalid filter: 'type'='{v}'")
        if key == "dangling":
            for v in values:
                filter_bool(key, v)


def apply(networks: list[Network], filters: dict[str, list[str]],
          in_use: Callable[[Network], bool]) -> list[Network]:
    """The networks passing every filter; values of one filter are OR-ed."""
    validate(filters)
    out: list[Network] = []
    for n in networks:
        if (names := filters.get("name")) and not any(_match(p, n.name) for p in names):
            continue
        if (ids := filters.get("id")) and not any(_match(p, n.id) for p in ids):
            continue
        if (drivers := filters.get("driver")) and n.driver not in drivers:
            continue
        if (scopes := filters.get("scope")) and n.scope not in scopes:
            continue
        if types := filters.get("type"):
            kind = "builtin" if n.predefined else "custom"
            if kind not in types:
                continue
        if (labels := filters.get("label")) and not labels_match(n.labels, labels):
            continue
        if dangling := filters.get("dangling"):
            want_dangling = filter_bool("dangling", dangling[-1])
            is_dangling = not n.predefined and not in_use(n)
            if want_dangling != is_dangling:
                continue
        out.append(n)
    return out


PRUNE_ACCEPTED = ("label", "label!", "until")


def prunable(networks: list[Network], filters: dict[str, list[str]]) -> list[Network]:
    """User-defined networks passing `network prune`'s filters (label, label!, until)."""
    for key in filters:
        if key not in PRUNE_ACCEPTED:
            raise InvalidParameter(f"invalid filter '{key}'")
    until = [_until(v) for v in filters.get("until", [])]
    out: list[Network] = []
    for n in networks:
        if n.predefined:
            continue
        if (labels := filters.get("label")) and not labels_match(n.labels, labels):
            continue
        if (nolabels := filters.get("label!")) and any(
                labels_match(n.labels, [w]) for w in nolabels):
            continue
        if until and not all(to_unix(n.created) < u for u in until):
            continue
        out.append(n)
    return out


def _until(value: str) -> float:
    """A timestamp (unix seconds or RFC3339) or a duration ago ("10m", "1h30m")."""
    import time
    try:
        return float(value)
    except ValueError:
        pass
    m = re.fullmatch(r"((?:\d+(?:\.\d+)?(?:h|m|s|ms))+)", value)
    if m:
        secs = 0.0
        for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value):
            secs += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
        return time.time() - secs
    try:
        return to_unix(value)
    except (ValueError, TypeError):
        raise InvalidParameter(f"invalid filter 'until={value}'") from None
