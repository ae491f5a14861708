"""The one place where untrusted JSON (request bodies, JSON-valued query
parameters) is parsed: any malformation is a JsonError (InvalidParameter, 400),
never a ValueError or RecursionError reaching a handler.

msgspec is strict where Go's encoding/json is (no NaN, no lone surrogates,
valid UTF-8, nothing after the value). Nesting is capped at MAX_DEPTH levels:
no Docker document comes near it, and deeper values would make any recursive
code that walks them (str(), repr(), json.dumps) fail later.
"""
from __future__ import annotations

from typing import Any

import msgspec

from ..errors import InvalidParameter

MAX_DEPTH = 100

_decoder = msgspec.json.Decoder()


class JsonError(InvalidParameter):
    """Malformed JSON (a 400); the message is ready for the client."""


def parse_json(raw: bytes | str, where: str = "") -> Any:
    """Decode raw JSON; raise JsonError("invalid JSON[ in <where>]: ...")."""
    prefix = f"invalid JSON in {where}" if where else "invalid JSON"
    try:
        value = _decoder.decode(raw)
    except RecursionError:
        raise JsonError(f"{prefix}: nesting too deep (more than {MAX_DEPTH} levels)") from None
    except msgspec.DecodeError as e:
        raise JsonError(f"{prefix}: {e}") from None
    if too_deep(value, MAX_DEPTH):
        raise JsonError(f"{prefix}: nesting too deep (more than {MAX_DEPTH} levels)")
    return value


def too_deep(value: Any, limit: int) -> bool:
    """True when lists/dicts nest more than `limit` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            children: Any = v.values()
        elif isinstance(v, list):
            children = v
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False
