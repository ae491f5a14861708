"""The `local` driver: the format of dockerd's own local driver, so its files read the
same. `<container-dir>/local-logs/container.log`, rotated as json-file (`.1.gz`, ...),
defaults max-size 20m, max-file 5, compress true. Each entry is

    uint32 big-endian N | N bytes: protobuf LogEntry | uint32 big-endian N

LogEntry (moby api/types/plugins/logdriver/entry.proto): 1 source (string:
"stdout"/"stderr"), 2 time_nano (int64, Unix ns), 3 line (bytes, without the
newline), 4 partial (bool, only written when true: a 16 KiB piece or output cut
at exit). The trailing length lets a reader walk the file backwards (`--tail`)."""
from __future__ import annotations

import struct
from typing import Callable, Mapping

from ..util.ids import to_unix_ns
from .goformat import format_ns
from .message import LogEntry, Message
from .options import FileOptions, file_options
from .rotate import RotatingFile
from .tag import ContainerInfo

_LEN = struct.Struct(">I")


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode(msg: Message) -> bytes:
    src = msg.stream.encode()
    body = (b"\x0a" + _varint(len(src)) + src + b"\x10" + _varint(to_unix_ns(msg.time))
            + b"\x1a" + _varint(len(msg.line)) + msg.line + (b"\x20\x01" if msg.partial else b""))
    n = _LEN.pack(len(body))
    return n + body + n


class LocalDriver:
    def __init__(self, path: str, info: ContainerInfo,
                 position: Mapping[str, int] | None = None,
                 on_open: Callable[[str], None] | None = None,
                 rotation: FileOptions | None = None) -> None:
        self.file = RotatingFile(path, rotation or file_options("local", info.options),
                                 position, on_open)

    def log(self, msg: Message) -> bool:
        return self.file.add(encode(msg), msg.time)

    def commit(self) -> Mapping[str, int]:
        return self.file.commit()

    def close(self) -> None:
        self.file.close()


def split_records(buf: bytes) -> tuple[list[bytes], int]:
    out: list[bytes] = []
    pos = 0
    while pos + 4 <= len(buf):
        (n,) = _LEN.unpack_from(buf, pos)
        end = pos + 4 + n + 4
        if end > len(buf):
            break
        out.append(buf[pos + 4:pos + 4 + n])
        pos = end
    return out, pos


def _read_varint(b: bytes, i: int) -> tuple[int, int]:
    shift = val = 0
    while True:
        c = b[i]
        i += 1
        val |= (c & 0x7F) << shift
        if c < 0x80:
            return val, i
        shift += 7


def decode(rec: bytes) -> LogEntry | None:
    stream, line, ns, partial = "stdout", b"", 0, False
    i = 0
    try:
        while i < len(rec):
            key, i = _read_varint(rec, i)
            field, wire = key >> 3, key & 7
            if wire == 0:
                val, i = _read_varint(rec, i)
                if field == 2:
                    ns = val
                elif field == 4:
                    partial = bool(val)
            elif wire == 2:
                n, i = _read_varint(rec, i)
                chunk, i = rec[i:i + n], i + n
                if field == 1:
                    stream = chunk.decode(errors="replace")
                elif field == 3:
                    line = chunk
            else:
                return None
    except IndexError:
        return None
    return LogEntry(stream, line if partial else line + b"\n", format_ns(ns))
