"""The msgpack that fluent-logger-golang (tinylib/msgp) writes, byte for byte: strings
as the str family whatever their bytes, integers in the smallest signed form, the
EventTime extension (type 0, 8 bytes: big-endian seconds and nanoseconds) as fixext8."""
from __future__ import annotations

import struct
from typing import Mapping


def pack_str(s: bytes | str) -> bytes:
    b = s.encode("utf-8", "surrogateescape") if isinstance(s, str) else s
    n = len(b)
    if n <= 31:
        return bytes((0xA0 | n,)) + b
    if n <= 0xFF:
        return b"\xd9" + bytes((n,)) + b
    if n <= 0xFFFF:
        return b"\xda" + struct.pack(">H", n) + b
    return b"\xdb" + struct.pack(">I", n) + b


def pack_int(i: int) -> bytes:
    """msgp.AppendInt64."""
    if i >= 0:
        if i <= 0x7F:
            return bytes((i,))
        if i <= 0x7FFF:
            return b"\xd1" + struct.pack(">h", i)
        if i <= 0x7FFFFFFF:
            return b"\xd2" + struct.pack(">i", i)
        return b"\xd3" + struct.pack(">q", i)
    if i >= -32:
        return struct.pack(">b", i)
    if i >= -0x80:
        return b"\xd0" + struct.pack(">b", i)
    if i >= -0x8000:
        return b"\xd1" + struct.pack(">h", i)
    if i >= -0x80000000:
        return b"\xd2" + struct.pack(">i", i)
    return b"\xd3" + struct.pack(">q", i)


def map_header(n: int) -> bytes:
    if n <= 15:
        return bytes((0x80 | n,))
    if n <= 0xFFFF:
        return b"\xde" + struct.pack(">H", n)
    return b"\xdf" + struct.pack(">I", n)


def pack_str_map(m: Mapping[str, bytes | str]) -> bytes:
    return map_header(len(m)) + b"".join(pack_str(k) + pack_str(v) for k, v in m.items())


def event_time(ns: int) -> bytes:
    """fluentd's EventTime as msgp writes it (int32 seconds, as fluent-logger-golang)."""
    sec, nsec = divmod(ns, 1_000_000_000)
    return b"\xd7\x00" + struct.pack(">iI", ((sec + 2**31) % 2**32) - 2**31, nsec)


def unpack_str_map(data: bytes) -> tuple[dict[str, str], int] | None:
    """A map of strings at the start of `data` (fluentd's ack): (map, bytes used), or
    None while incomplete. ValueError for anything else."""
    pos = 0

    def need(n: int) -> None:
        if pos + n > len(data):
            raise IndexError

    def read_str() -> str:
        nonlocal pos
        need(1)
        c = data[pos]
        if 0xA0 <= c <= 0xBF:
            n, pos = c & 0x1F, pos + 1
        elif c == 0xD9:
            need(2)
            n, pos = data[pos + 1], pos + 2
        elif c == 0xDA:
            need(3)
            n, pos = struct.unpack_from(">H", data, pos + 1)[0], pos + 3
        else:
            raise ValueError(f"unexpected msgpack type 0x{c:02x}")
        need(n)
        s = data[pos:pos + n].decode("utf-8", "replace")
        pos += n
        return s
    try:
        need(1)
        c = data[0]
        if 0x80 <= c <= 0x8F:
            count, pos = c & 0x0F, 1
        elif c == 0xDE:
            need(3)
            count, pos = struct.unpack_from(">H", data, 1)[0], 3
        else:
            raise ValueError(f"unexpected msgpack type 0x{c:02x}")
        out = {}
        for _ in range(count):
            k = read_str()
            out[k] = read_str()
        return out, pos
    except IndexError:
        return None
