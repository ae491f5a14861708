"""The gelf driver: dockerd's (daemon/logger/gelf over Graylog2/go-gelf), GELF 1.1.

A message is Go's JSON of
  {"version":"1.1","host":HOST,"short_message":LINE,"timestamp":SEC.mmm,"level":6|3,
   "_command":..,"_container_id":..,"_container_name":..,"_created":..,"_image_id":..,
   "_image_name":..,"_tag":.., "_<label or env>":..}
(extra fields sorted, strings escaped as encoding/json does). UDP: compressed
(`gelf-compression-type` gzip (default) | zlib | none, `gelf-compression-level` -1..9,
default 1) and, from 1408 bytes on, cut into chunks of 12-byte header (0x1e 0x0f,
8 random id bytes, sequence, count) + up to 1408 bytes, at most 128 chunks (a larger
message is dropped, as go-gelf). TCP: uncompressed, each message ended by a NUL
byte, a failed write retried `gelf-tcp-max-reconnect` (3) times, waiting
`gelf-tcp-reconnect-delay` (1) seconds each. Empty lines are not sent.
"""
from __future__ import annotations

import logging
import os
import re
import socket
import struct
import zlib
from typing import Mapping

from ..util.ids import to_unix_ns
from .golike import local_rfc3339, parse_url, split_host_port
from .delivery import driver_options
from .message import Message
from .netio import Conn, DriverClosed
from .tag import ContainerInfo, check_template, extra_attributes, render_tag

log = logging.getLogger("pydockerd.logs")

COMMON = ("env", "env-regex", "labels", "labels-regex", "tag")
CHUNK_DATA = 1408                  # go-gelf: ChunkSize 1420 - 12 header bytes
MAX_CHUNKS = 128
MAGIC = b"\x1e\x0f"
_ESC_RE = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029\udc80-\udcff]')
_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b",
        "\f": "\\f"}


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    if c in _ESC:
        return _ESC[c]
    if "\udc80" <= c <= "\udcff":
        return "\\ufffd"
    return f"\\u{ord(c):04x}"


def go_json_string(data: bytes | str) -> str:
    """A JSON string as Go's encoding/json writes it (HTML-safe; bad UTF-8 as U+FFFD)."""
    s = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    return '"' + _ESC_RE.sub(_escape, s) + '"'


def go_float(x: float) -> str:
    """strconv.FormatFloat(x, 'f', -1, 64) for the range timestamps live in."""
    r = repr(x)
    return r[:-2] if r.endswith(".0") else r


def parse_address(address: str) -> tuple[str, str]:
    if not address:
        raise ValueError("gelf-address is a required parameter")
    url = parse_url(address)
    if url.scheme not in ("udp", "tcp"):
        raise ValueError("gelf: endpoint needs to be TCP or UDP")
    try:
        split_host_port(url.host)
    except ValueError:
        raise ValueError("gelf: please provide gelf-address as proto://host:port") from None
    return url.scheme, url.host


def _atoi(s: str) -> int | None:
    return int(s) if re.fullmatch(r"[+-]?\d+", s) else None


def validate(opts: Mapping[str, str]) -> None:
    """dockerd's gelf ValidateLogOpt, wording included."""
    scheme, _ = parse_address(opts.get("gelf-address", ""))
    for key in sorted(opts):
        val = opts[key]
        if key in COMMON or key == "gelf-address":
            continue
        if key in ("gelf-compression-level", "gelf-compression-type"):
            if scheme != "udp":
                raise ValueError("compression is only supported on UDP")
            level = _atoi(val)
            ok = (val in ("gzip", "zlib", "none") if key == "gelf-compression-type"
                  else level is not None and -1 <= level <= 9)
            if not ok:
                raise ValueError(f'unknown value "{val}" for log opt "{key}" for gelf log driver')
        elif key in ("gelf-tcp-max-reconnect", "gelf-tcp-reconnect-delay"):
            if scheme != "tcp":
                raise ValueError(f'"{key}" is only valid for TCP')
            n = _atoi(val)
            if n is None or n < 0:
                raise ValueError(f'"{key}" must be a positive integer')
        else:
            raise ValueError(f'unknown log opt "{key}" for gelf log driver')
    if "tag" in opts:
        check_template(opts["tag"])


def extra_json(info: ContainerInfo) -> str:
    """The `_` fields (sorted, as json.Marshal of a map), without the braces."""
    created = to_unix_ns(info.created) if info.created else 0
    extra = {"_container_id": info.id, "_container_name": info.value("Name"),
             "_image_id": info.image_id, "_image_name": info.image_name,
             "_command": info.command, "_tag": render_tag(info),
             "_created": (local_rfc3339(created, 9, trim=True, utc=True) if created
                          else "0001-01-01T00:00:00Z")}
    for k, v in extra_attributes(info).items():
        extra[k if k.startswith("_") else "_" + k] = v
    return ",".join(go_json_string(k) + ":" + go_json_string(v)
                    for k, v in sorted(extra.items()))


def encode_message(host: str, line: bytes, ns: int, level: int, extra: str) -> bytes:
    ts = go_float((ns // 1_000_000) / 1000.0)
    head = (f'{{"version":"1.1","host":{go_json_string(host)},"short_message":'
            f'{go_json_string(line)},"timestamp":{ts},"level":{level}')
    return (head + ("," + extra if extra else "") + "}").encode()


def compress(data: bytes, kind: str, level: int) -> bytes:
    if kind == "gzip":          # Go's header: no mtime, XFL by level, OS 255 (unknown)
        co = zlib.compressobj(level, zlib.DEFLATED, -15)
        xfl = 2 if level == 9 else 4 if level == 1 else 0
        return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes((xfl, 255)) + co.compress(data)
                + co.flush() + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF))
    if kind == "zlib":
        return zlib.compress(data, level)
    return data


def chunks(data: bytes, msg_id: bytes | None = None) -> list[bytes]:
    """go-gelf's datagrams for one (compressed) message: itself when under 1408
    bytes, else chunks; ValueError past 128 chunks."""
    n = len(data) // CHUNK_DATA + 1
    if n == 1:
        return [data]
    if n > MAX_CHUNKS:
        raise ValueError(f"msg too large, would need {n} chunks")
    mid = msg_id if msg_id is not None else os.urandom(8)
    return [MAGIC + mid + bytes((i, n)) + data[i * CHUNK_DATA:(i + 1) * CHUNK_DATA]
            for i in range(n)]


class GelfDriver:
    def __init__(self, info: ContainerInfo, hostname: str | None = None) -> None:
        opts = info.options
        validate(driver_options(opts))
        self.scheme, address = parse_address(opts["gelf-address"])
        self.host = hostname if hostname is not None else socket.gethostname()
        self.extra = extra_json(info)
        self.kind = opts.get("gelf-compression-type", "gzip")
        self.level = int(opts.get("gelf-compression-level", "1"))
        self.max_reconnect = int(opts.get("gelf-tcp-max-reconnect", "3"))
        self.reconnect_delay = float(opts.get("gelf-tcp-reconnect-delay", "1"))
        self.conn = Conn(self.scheme, address)
        try:
            self.conn.connect()
        except (OSError, ValueError) as e:
            raise ValueError(f"gelf: cannot connect to GELF endpoint: {address} "
                             f"{e.strerror if isinstance(e, OSError) and e.strerror else e}"
                             ) from None

    def encode(self, msg: Message) -> list[bytes]:
        """The datagrams (UDP) or the one NUL-ended frame (TCP) for `msg`."""
        body = encode_message(self.host, msg.line, to_unix_ns(msg.time),
                              3 if msg.stream == "stderr" else 6, self.extra)
        if self.scheme == "tcp":
            return [body + b"\0"]
        return chunks(compress(body, self.kind, self.level))

    def log(self, msg: Message) -> bool:
        if not msg.line:
            return False
        try:
            frames = self.encode(msg)
        except ValueError as e:
            log.warning("gelf: message dropped: %s", e)
            return False
        try:
            if self.scheme == "udp":
                for frame in frames:
                    self._send_udp(frame)
            else:
                self._send_tcp(frames[0])
        except DriverClosed:
            raise
        except OSError as e:
            log.warning("gelf: cannot send GELF message: %s", e)
        return False

    def _send_udp(self, frame: bytes) -> None:
        try:
            self.conn.send(frame)
        except ConnectionRefusedError:       # an earlier datagram's ICMP: once more
            self.conn.send(frame)

    def _send_tcp(self, frame: bytes) -> None:
        for attempt in range(self.max_reconnect + 1):
            try:
                self.conn.send(frame)
                return
            except DriverClosed:
                raise
            except OSError:
                self.conn.wait(self.reconnect_delay)
        raise OSError("Maximum reconnection attempts was reached; giving up")

    def commit(self) -> Mapping[str, int]:
        return {}

    def close(self) -> None:
        self.conn.close()
