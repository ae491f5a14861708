"""conmon's spool: what a container wrote, in conmon's k8s-file format, under the exec
root (`<bundle>/log-<start ns>.spool`, one file per run), and the cursor that says
how much of it the driver has.

A k8s-file record is `<RFC3339Nano> <stdout|stderr> <F|P> <bytes>\\n`: F ends a
line, P is a piece of one (conmon cuts at its 8 KiB read buffer and at each read).
The Assembler turns records into dockerd's messages: pieces are joined per stream
and a line is cut into 16 KiB partial messages, all with the time of its first
piece, as dockerd's copier does.

The cursor (`<bundle>/log.cursor`, replaced atomically) holds: the spool being
read, the offset of the first record not yet handed to the driver, the joined
pieces not yet written (< 16 KiB a stream), and the driver's position.
"""
from __future__ import annotations

import base64
import ctypes
import ctypes.util
import json
import os
from dataclasses import dataclass, field
from typing import Callable, Mapping

from ..util.fsatomic import write_atomic
from .message import LogDriver, Message

PARTIAL_MAX = 16 * 1024
SPOOL_SUFFIX = ".spool"
CURSOR = "log.cursor"
_STREAMS = {b"stdout": "stdout", b"stderr": "stderr"}
_PUNCH_HOLE = 0x02 | 0x01        # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def new_spool_name(start_ns: int) -> str:
    return f"log-{start_ns:020d}{SPOOL_SUFFIX}"


def spools(bundle: str) -> list[str]:
    """This container's spool files, oldest run first."""
    try:
        names = os.listdir(bundle)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith("log-") and n.endswith(SPOOL_SUFFIX))


def punch_hole(fd: int, upto: int) -> None:
    """Give back the memory/disk of the consumed head of a spool (sizes stay)."""
    upto &= ~0xFFF
    if upto > 0:
        _libc.fallocate(fd, _PUNCH_HOLE, 0, upto)


@dataclass
class Cursor:
    spool: str = ""                  # the spool file name; "" when none is being read
    offset: int = 0
    pending: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    driver: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, bundle: str) -> "Cursor":
        try:
            with open(os.path.join(bundle, CURSOR), "rb") as f:
                d = json.loads(f.read())
            pending = {s: (ts, base64.b64decode(data))
                       for s, (ts, data) in dict(d.get("pending") or {}).items()}
            return cls(str(d.get("spool") or ""), int(d.get("offset") or 0), pending,
                       {k: int(v) for k, v in dict(d.get("driver") or {}).items()})
        except (OSError, ValueError, TypeError):
            return cls()

    def save(self, bundle: str) -> None:
        d = {"spool": self.spool, "offset": self.offset, "driver": self.driver,
             "pending": {s: [ts, base64.b64encode(data).decode()]
                         for s, (ts, data) in self.pending.items()}}
        write_atomic(os.path.join(bundle, CURSOR), json.dumps(d), fsync=False)


class Assembler:
    """k8s-file records -> Messages into a driver; see the module doc."""

    def __init__(self, pending: Mapping[str, tuple[str, bytes]]) -> None:
        self.pending: dict[str, tuple[str, bytes]] = dict(pending)

    def feed(self, data: bytes, driver: LogDriver,
             commit: Callable[[int], None]) -> int:
        """Hand the complete records of `data` to `driver`; `commit(end)` is called at a
        record boundary whenever the driver asks. Returns the bytes consumed."""
        end = data.rfind(b"\n") + 1
        pending = self.pending
        pos = 0
        ts_b, ts = b"", ""
        streams = _STREAMS
        log = driver.log
        for line in data[:end - 1].split(b"\n") if end else ():
            pos += len(line) + 1
            parts = line.split(b" ", 3)
            if len(parts) < 3:
                continue                     # not a record (cannot happen with conmon)
            stream = streams.get(parts[1])
            if stream is None:
                continue
            text = parts[3] if len(parts) > 3 else b""
            if parts[2] == b"F" and stream not in pending and len(text) < PARTIAL_MAX:
                if parts[0] != ts_b:
                    ts_b, ts = parts[0], parts[0].decode()
                want = log(Message(stream, text, False, ts))
            else:
                want = self._piece(stream, parts[0], text, driver, last=parts[2] == b"F")
            if want:
                commit(pos)
        return end

    def _piece(self, stream: str, ts: bytes, text: bytes, driver: LogDriver,
               last: bool) -> bool:
        first_ts, buf = self.pending.pop(stream, (ts.decode(), b""))
        buf += text
        want = False
        while len(buf) >= PARTIAL_MAX:
            want = driver.log(Message(stream, buf[:PARTIAL_MAX], True, first_ts)) or want
            buf = buf[PARTIAL_MAX:]
        if last:
            want = driver.log(Message(stream, buf, False, first_ts)) or want
        else:       # even empty: the line's next pieces keep its first time
            self.pending[stream] = (first_ts, buf)
        return want

    def flush(self, driver: LogDriver) -> None:
        """The run ended: a line without its newline goes out as a partial message."""
        for stream, (ts, buf) in sorted(self.pending.items()):
            if buf:
                driver.log(Message(stream, buf, True, ts))
        self.pending.clear()
