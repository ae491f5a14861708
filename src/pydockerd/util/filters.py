"""Pieces of Docker's `filters` semantics shared by every list and prune endpoint."""
from __future__ import annotations

from ..errors import InvalidParameter


def labels_match(labels: dict[str, str], wanted: list[str],
                 negated: list[str] | None = None) -> bool:
    """`label=k` / `label=k=v` must all match; `label!=...` must all not match."""
    for w in wanted:
        key, sep, value = w.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    for w in negated or []:
        key, sep, value = w.partition("=")
        if key in labels and (not sep or labels[key] == value):
            return False
    return True


def filter_bool(key: str, value: str) -> bool:
    """A boolean filter value ("true"/"1"/"false"/"0"), else Docker's 400."""
    v = value.lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise InvalidParameter(f"invalid filter '{key}={value}'")
