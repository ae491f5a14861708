"""Request bytes → typed models (pydockerd.models), decoded the way Go's encoding/json does.

One generic decoder for every body and JSON-valued query parameter:

1. parse (api/jsonin.parse_json: malformed or too deeply nested JSON is a 400);
2. walk the value along the target type's schema (msgspec.inspect.type_info, cached
   per type): keys match field names case-insensitively (an exact match first, as Go),
   `null` means absent (Go leaves the zero value), a string where a
   strslice.StrSlice is expected becomes a one-element list;
3. `msgspec.convert(..., strict=True)` (Go does not turn "1" into 1);
4. a msgspec.ValidationError becomes InvalidParameter with dockerd's wording:
   `json: cannot unmarshal string into Go struct field HostConfig.HostConfig.LogConfig
   of type container.LogConfig`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi

from ..errors import InvalidParameter
from .jsonin import parse_json

T = TypeVar("T")


# ---------------------------------------------------------------- schema plans


@dataclass(frozen=True)
class _Struct:
    exact: dict[str, Any]            # field name -> plan of its value (None: leaf)
    folded: dict[str, str]           # lower-case name -> field name


@dataclass(frozen=True)
class _List:
    item: Any


@dataclass(frozen=True)
class _Map:
    value: Any
    nullable: bool                   # a null value is kept (the value type allows it)


class _StrSlice:
    pass


_STRSLICE = _StrSlice()


def _strip(t: mi.Type) -> tuple[mi.Type, bool]:
    """The type without `| None` and without Annotated metadata; whether None was allowed."""
    nullable = False
    if isinstance(t, mi.UnionType):
        rest = [x for x in t.types if not isinstance(x, mi.NoneType)]
        nullable = len(rest) < len(t.types)
        if len(rest) == 1:
            t = rest[0]
    return t, nullable


def _plan(t: mi.Type, seen: dict[type, _Struct]) -> Any:
    t, _ = _strip(t)
    if isinstance(t, mi.Metadata):
        if (t.extra or {}).get("strslice"):
            return _STRSLICE
        return _plan(t.type, seen)
    if isinstance(t, mi.StructType):
        if t.cls in seen:
            return seen[t.cls]
        plan = _Struct({}, {})
        seen[t.cls] = plan
        for f in t.fields:
            plan.exact[f.encode_name] = _plan(f.type, seen)
            plan.folded.setdefault(f.encode_name.lower(), f.encode_name)
        return plan
    if isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        item = _plan(t.item_type, seen)
        return _List(item) if item is not None else None
    if isinstance(t, mi.DictType):
        value = _plan(t.value_type, seen)
        nullable = _strip(t.value_type)[1]
        return _Map(value, nullable) if value is not None or not nullable else None
    return None


@lru_cache(maxsize=None)
def _type_info(typ: Any) -> mi.Type:
    return mi.type_info(typ)


@lru_cache(maxsize=None)
def _plan_of(typ: Any) -> Any:
    return _plan(_type_info(typ), {})


def _normalise(obj: Any, plan: Any) -> Any:
    if plan is None:
        return obj
    if isinstance(plan, _Struct):
        if not isinstance(obj, dict):
            return obj
        out: dict[str, Any] = {}
        exact, folded = plan.exact, plan.folded
        for key, value in obj.items():
            if value is None:
                continue
            if key in exact:
                name = key
            else:
                found = folded.get(key.lower())
                if found is None:
                    continue            # unknown field: ignored, as dockerd does
                name = found
            sub = exact[name]
            out[name] = value if sub is None else _normalise(value, sub)
        return out
    if isinstance(plan, _List):
        if isinstance(obj, list):
            return [_normalise(x, plan.item) for x in obj]
        return obj
    if isinstance(plan, _Map):
        if not isinstance(obj, dict):
            return obj
        return {k: (None if v is None else _normalise(v, plan.value))
                for k, v in obj.items() if v is not None or plan.nullable}
    if isinstance(obj, str):            # strslice.StrSlice
        return [obj]
    return obj


# ---------------------------------------------------------------- error messages

_GO_KIND = {"str": "string", "int": "number", "float": "number", "bool": "bool",
            "object": "object", "array": "array", "null": "null"}
_ERR_RE = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>.*)`)?$", re.S)
_GOT_RE = re.compile(r"got `(\w+)`")
_PATH_RE = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def go_type_name(t: mi.Type) -> str:
    """Go's spelling of a model type, for messages (`[]string`, `container.LogConfig`)."""
    t, _ = _strip(t)
    if isinstance(t, mi.Metadata):
        go = (t.extra or {}).get("go")
        return str(go) if go else go_type_name(t.type)
    if isinstance(t, mi.StructType):
        return str(getattr(t.cls, "go_type", "") or t.cls.__name__)
    if isinstance(t, (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)):
        return "[]" + go_type_name(t.item_type)
    if isinstance(t, mi.DictType):
        return f"map[{go_type_name(t.key_type)}]{go_type_name(t.value_type)}"
    simple = {mi.StrType: "string", mi.IntType: "int", mi.FloatType: "float64",
              mi.BoolType: "bool", mi.AnyType: "interface {}"}
    for cls, name in simple.items():
        if isinstance(t, cls):
            return name
    return "interface {}"


def _locate(root: mi.Type, path: str) -> tuple[str, list[str], mi.Type]:
    """Walk a msgspec error path: (innermost struct's Go name, field names, type there)."""
    t = root
    struct_name = ""
    fields: list[str] = []
    for m in _PATH_RE.finditer(path):
        t, _ = _strip(t)
        while isinstance(t, mi.Metadata):
            t, _ = _strip(t.type)
        if m.group(1) is not None and isinstance(t, mi.StructType):
            f = next((f for f in t.fields if f.encode_name == m.group(1)), None)
            if f is None:
                break
            struct_name = go_type_name(t).rsplit(".", 1)[-1]
            fields.append(f.encode_name)
            t = f.type
        elif m.group(2) is not None and isinstance(t, (mi.ListType, mi.VarTupleType)):
            t = t.item_type
        elif m.group(2) is not None and isinstance(t, mi.DictType):
            t = t.value_type
    return struct_name, fields, t


def _message(err: msgspec.ValidationError, typ: Any, value: Any) -> str:
    m = _ERR_RE.match(str(err))
    what = m.group("what") if m else str(err)
    path = (m.group("path") if m else "") or ""
    struct_name, fields, t = _locate(_type_info(typ), path)
    gotm = _GOT_RE.search(what)
    if gotm:
        kind = _GO_KIND.get(gotm.group(1), gotm.group(1))
    elif what.startswith("Expected `int`") or what.startswith("Expected `float`"):
        kind = f"number {_value_at(value, path)}"     # out of range
    else:
        where = ".".join(fields) or "body"
        return f"invalid {where}: {what}"
    into = f"Go struct field {struct_name}.{'.'.join(fields)}" if fields else "Go value"
    return f"json: cannot unmarshal {kind} into {into} of type {go_type_name(t)}"


def _value_at(value: Any, path: str) -> str:
    for m in _PATH_RE.finditer(path):
        try:
            if m.group(1) is not None:
                value = value[m.group(1)]
            elif m.group(2) != "...":
                value = value[int(m.group(2))]
            else:
                return ""
        except (KeyError, IndexError, TypeError):
            return ""
    return str(value)


# ---------------------------------------------------------------- entry points


def convert(obj: Any, typ: type[T]) -> T:
    """An already parsed JSON value → the model `typ`, with Go's decoding rules."""
    t: Any = typ
    normal = _normalise(obj, _plan_of(t))
    try:
        return msgspec.convert(normal, typ, strict=True)
    except msgspec.ValidationError as e:
        raise InvalidParameter(_message(e, t, normal)) from None


def decode_body(raw: bytes, typ: type[T], *, required: bool = False) -> T:
    """A request body → the model `typ`. An empty or `null` body is the zero value (all
    fields absent), or an error when `required` (the create body)."""
    obj = parse_json(raw) if raw.strip() else None        # api/jsonin: the one JSON parser
    if obj is None:                     # no body, or `null`: Go leaves the zero value
        if required:
            raise InvalidParameter("config cannot be empty in order to create a container")
        return convert({}, typ)
    return convert(obj, typ)


def decode_query_json(raw: str | None, typ: type[T], name: str) -> T | None:
    """A JSON-valued query parameter (`buildargs`, `labels`, ...) → `typ`; None if absent."""
    if not raw:
        return None
    obj = parse_json(raw, name)
    if obj is None:
        return None
    return convert(obj, typ)


__all__ = ["convert", "decode_body", "decode_query_json", "go_type_name", "parse_json"]
