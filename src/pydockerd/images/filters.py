"""GET /images/json filters: dangling, label, reference, before, since, until."""
from __future__ import annotations

import re
import time
from typing import Callable

from ..errors import InvalidParameter
from ..util.ids import to_unix
from .model import Image
from .references import Reference, familiar_match
from ..util.filters import labels_match

ACCEPTED = {"dangling", "label", "reference", "before", "since", "until"}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_timestamp(value: str, now: float | None = None) -> float:
    """Docker's GetTimestamp: unix seconds, RFC3339 (or a date), or a Go duration ago."""
    now = time.time() if now is None else now
    v = value.strip()
    try:
        return float(v)
    except ValueError:
        pass
    m = re.fullmatch(r"(-?)((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)", v)
    if m:
        secs = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(m.group(2)))
        return now + secs if m.group(1) else now - secs
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
            v += "T00:00:00Z"
        return to_unix(v)
    except ValueError:
        raise InvalidParameter(f"failed to parse value as time or duration: \"{value}\"") \
            from None


def validate(filters: dict[str, list[str]]) -> None:
    for key in filters:
        if key not in ACCEPTED:
            raise InvalidParameter(f"invalid filter '{key}'")


def dangling_only(filters: dict[str, list[str]]) -> bool:
    values = filters.get("dangling")
    if not values:
        return False
    truthy = [v for v in values if v.lower() in ("true", "1")]
    falsy = [v for v in values if v.lower() in ("false", "0")]
    if len(truthy) + len(falsy) != len(values):
        bad = next(v for v in values if v not in truthy and v not in falsy)
        raise InvalidParameter(f"invalid filter 'dangling={bad}'")
    return bool(truthy)


def label_match(img: Image, wanted: list[str]) -> bool:
    return labels_match(img.labels, wanted)


def time_bounds(filters: dict[str, list[str]], resolve: Callable[[str], Image]
                ) -> tuple[float | None, float | None]:
    """(created must be > lower, created must be < upper) from since/before/until."""
    lower = upper = None
    for ref in filters.get("since", []):
        t = to_unix(resolve(ref).created)
        lower = t if lower is None else max(lower, t)
    for ref in filters.get("before", []):
        t = to_unix(resolve(ref).created)
        upper = t if upper is None else min(upper, t)
    for value in filters.get("until", []):
        t = parse_timestamp(value)
        upper = t if upper is None else min(upper, t + 1e-9)
    return lower, upper


def matching_refs(refs: list[Reference], patterns: list[str]) -> list[Reference]:
    return [r for r in refs if any(familiar_match(p, r) for p in patterns)]
