"""The json-file driver, byte for byte as dockerd writes it:
`{"log":"...\\n","stream":"stdout","attrs":{...},"time":"<RFC3339Nano>"}` a line
(`attrs` only when `labels`/`env`/`tag` options put something in it)."""
from __future__ import annotations

import json
from typing import Callable, Mapping

import msgspec

from .goformat import go_json_bytes, go_json_map, go_time
from .message import LogEntry, Message
from .options import file_options
from .rotate import RotatingFile
from .tag import ContainerInfo, extra_attributes, render_tag


class JsonFileDriver:
    def __init__(self, path: str, info: ContainerInfo,
                 position: Mapping[str, int] | None = None,
                 on_open: Callable[[str], None] | None = None) -> None:
        self.file = RotatingFile(path, file_options("json-file", info.options), position, on_open)
        attrs = extra_attributes(info)
        if "tag" in info.options:
            attrs["tag"] = render_tag(info)
        mid = (',"attrs":' + go_json_map(attrs)) if attrs else ""
        self._mid = {s: f'","stream":"{s}"{mid},"time":"'.encode() for s in ("stdout", "stderr")}
        self._mid_nl = {s: b"\\n" + m for s, m in self._mid.items()}
        self._ts = ""
        self._go_ts = b""

    def log(self, msg: Message) -> bool:
        # the hot path: one line of many with the same time (conmon stamps each read)
        if msg.time != self._ts:
            self._ts, self._go_ts = msg.time, go_time(msg.time).encode()
        mid = (self._mid if msg.partial else self._mid_nl)[msg.stream]
        rec = b'{"log":"' + go_json_bytes(msg.line) + mid + self._go_ts + b'"}\n'
        return self.file.add(rec, msg.time)

    def commit(self) -> Mapping[str, int]:
        return self.file.commit()

    def close(self) -> None:
        self.file.close()


def split_records(buf: bytes) -> tuple[list[bytes], int]:
    """Complete lines of `buf` and how many bytes they take."""
    end = buf.rfind(b"\n") + 1
    if not end:
        return [], 0
    return buf[:end - 1].split(b"\n"), end


class _Record(msgspec.Struct, gc=False):
    log: str = ""
    stream: str = ""
    time: str = ""
    attrs: dict[str, str] | None = None


_LINES = msgspec.json.Decoder(_Record)


def parse(buf: bytes) -> tuple[list[LogEntry], int]:
    """The entries of the complete lines of `buf` and how many bytes they take: all
    lines decoded in one call (dockerd's own lines always fit the schema); a chunk
    with a line that does not (torn, foreign, a null) is decoded line by line."""
    end = buf.rfind(b"\n") + 1
    if not end:
        return [], 0
    try:
        recs = _LINES.decode_lines(buf[:end] if end < len(buf) else buf)
    except msgspec.MsgspecError:
        lines, _ = split_records(buf)
        return [e for e in map(decode, lines) if e is not None], end
    return [LogEntry(r.stream or "stdout", r.log.encode(), r.time,
                     tuple(r.attrs.items()) if r.attrs else ()) for r in recs], end


def decode(rec: bytes) -> LogEntry | None:
    try:
        obj = json.loads(rec)
        attrs = obj.get("attrs")
        return LogEntry(obj.get("stream") or "stdout",
                        str(obj.get("log") or "").encode("utf-8", "replace"),
                        str(obj.get("time") or ""),
                        tuple((str(k), str(v)) for k, v in attrs.items()) if attrs else ())
    except (ValueError, AttributeError):
        return None          # a torn or foreign line: skipped, as dockerd's decoder
