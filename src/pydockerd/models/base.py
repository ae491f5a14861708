"""The base of the typed API models: frozen msgspec Structs named after Docker's Go types.

Every field defaults to None, so a model keeps exactly the fields the client sent
(`msgspec.to_builtins` with omit_defaults drops the rest); the Go type names in
`go_type` and in the `go` extra of the aliases below are what error messages show.
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, TypeVar

import msgspec

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

# Go integer kinds (range-checked, so a 1e30 is a 400 and never reaches the runtime)
Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX, extra={"go": "int64"})]
Int = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX, extra={"go": "int"})]
UInt16 = Annotated[int, msgspec.Meta(ge=0, le=0xFFFF, extra={"go": "uint16"})]
UInt32 = Annotated[int, msgspec.Meta(ge=0, le=0xFFFFFFFF, extra={"go": "uint32"})]
UInt = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX, extra={"go": "uint"})]
# moby's strslice.StrSlice: a JSON string is a one-element list (api/decode.py does it)
StrSlice = Annotated[list[str], msgspec.Meta(extra={"go": "strslice.StrSlice",
                                                    "strslice": True})]
StrMap = dict[str, str]
# a Go `interface{}` / json.RawMessage field: any JSON value, kept as is
AnyJSON = Any


class Model(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=False):
    """Base of every request model. `go_type` names the Go type in error messages."""

    go_type: ClassVar[str] = ""


class Empty(Model, frozen=True):
    """Go's struct{} (the values of ExposedPorts and Volumes): any object."""

    go_type: ClassVar[str] = "struct {}"


def to_doc(model: Model | None) -> dict[str, Any] | None:
    """The canonical document of a model: what the client sent (non-null fields), with
    Docker's key case. This is what services take until they switch to typed models."""
    if model is None:
        return None
    doc: dict[str, Any] = msgspec.to_builtins(model)
    return doc


M = TypeVar("M", bound=Model)


def from_doc(doc: dict[str, Any] | None, typ: type[M]) -> M:
    """A document made by `to_doc` (kept in a record) back into its model; None is the
    zero value. Not for client input: that goes through api/decode.py."""
    return msgspec.convert(doc or {}, typ)
