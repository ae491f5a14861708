"""Byte-exact Go spellings the json-file format needs: strings as moby's
jsonlog writes them, and time.RFC3339Nano."""
from __future__ import annotations

import datetime as _dt
import re
from typing import Mapping

from ..util.ids import to_unix_ns

# what moby's ffjsonWriteJSONBytesAsString escapes: control bytes, `"`, `\`, the HTML
# characters, U+2028/U+2029; invalid UTF-8 (here: surrogateescape'd bytes) -> \ufffd
_ESCAPE_RE = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029\udc80-\udcff]')
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\u2028": "\\u2028",
            "\u2029": "\\u2029"}
for _c in list(range(0x20)) + [ord("<"), ord(">"), ord("&")]:
    _ESCAPES.setdefault(chr(_c), f"\\u{_c:04x}")
for _c in range(0xDC80, 0xDD00):
    _ESCAPES[chr(_c)] = "\\ufffd"


def _escape_one(m: re.Match[str]) -> str:
    return _ESCAPES[m.group()]


def go_json_string(data: bytes) -> str:
    """`data` as a JSON string literal, byte for byte as dockerd's json-file writes it."""
    s = data.decode("utf-8", "surrogateescape")
    if _ESCAPE_RE.search(s) is None:
        return '"' + s + '"'
    return '"' + _ESCAPE_RE.sub(_escape_one, s) + '"'


_PLAIN_RE = re.compile(rb'[\x00-\x1f"\\<>&\x80-\xff]')


def go_json_bytes(data: bytes) -> bytes:
    """The inside of go_json_string(data), as bytes (printable ASCII needs no work)."""
    if _PLAIN_RE.search(data) is None:
        return data
    return go_json_string(data)[1:-1].encode()


def go_json_map(values: Mapping[str, str]) -> str:
    """A map[string]string as Go's json.Marshal writes it (sorted keys)."""
    return "{" + ",".join(go_json_string(k.encode()) + ":" + go_json_string(v.encode())
                          for k, v in sorted(values.items())) + "}"


def go_time(ts: str) -> str:
    """conmon's `2024-05-01T10:00:00.120000000+00:00` -> Go's RFC3339Nano in UTC
    (`2024-05-01T10:00:00.12Z`: trailing zeros of the fraction dropped)."""
    if not ts.endswith(("+00:00", "Z")):
        return format_ns(to_unix_ns(ts))
    base = ts[:-6] if ts[-1] != "Z" else ts[:-1]
    frac = base[20:].rstrip("0")
    return base[:19] + ("." + frac if frac else "") + "Z"


def format_ns(ns: int, fixed: bool = False) -> str:
    """Unix nanoseconds -> RFC3339Nano UTC (`fixed`: always 9 digits, as `logs -t`)."""
    sec, frac = divmod(ns, 1_000_000_000)
    base = _dt.datetime.fromtimestamp(sec, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{frac:09d}"
    if not fixed:
        digits = digits.rstrip("0")
    return base + ("." + digits if digits else "") + "Z"


def fixed_nano(ts: str) -> str:
    """An RFC3339Nano UTC time with exactly 9 fraction digits (RFC3339NanoFixed)."""
    if not ts.endswith("Z"):
        return format_ns(to_unix_ns(ts), fixed=True)
    base, _, frac = ts[:-1].partition(".")
    return f"{base}.{frac[:9].ljust(9, '0')}Z"
