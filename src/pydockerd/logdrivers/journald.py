"""The journald driver: dockerd's (daemon/logger/journald over go-systemd's
journal.Send), on journald's native protocol.

Each message is one datagram to /run/systemd/journal/socket: `PRIORITY=6|3`,
`MESSAGE=<line>`, then the container's fields (sorted), each `KEY=value\\n`, or
`KEY\\n<uint64 LE length><value>\\n` when the value holds a newline. A datagram
too big for the socket goes as a sealed memfd passed with SCM_RIGHTS, as
go-systemd does. Fields: CONTAINER_ID (12), CONTAINER_ID_FULL, CONTAINER_NAME,
CONTAINER_TAG and SYSLOG_IDENTIFIER (the tag), IMAGE_NAME, CONTAINER_LOG_EPOCH
(random per driver) and CONTAINER_LOG_ORDINAL (1, 2, ...), SYSLOG_TIMESTAMP (the
line's time, RFC3339Nano local), for split lines CONTAINER_PARTIAL_ID/_ORDINAL/_LAST
and CONTAINER_PARTIAL_MESSAGE=true on all but the last piece; `labels`/`env` values
under their names upper-cased with other characters as `_`. A failed send is
dropped with a warning, as dockerd does.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import secrets
import socket
import struct
from typing import Mapping

from ..util.ids import to_unix_ns
from .golike import local_rfc3339
from .delivery import driver_options
from .message import Message
from .netio import DriverClosed
from .partials import PartialTracker
from .tag import ContainerInfo, check_template, extra_attributes, render_tag

log = logging.getLogger("pydockerd.logs")

SOCKET = "/run/systemd/journal/socket"
COMMON = ("env", "env-regex", "labels", "labels-regex", "tag")
_LEN = struct.Struct("<Q")
_MFD_CLOEXEC, _MFD_ALLOW_SEALING = 1, 2
_F_ADD_SEALS, _F_SEAL_ALL = 1033, 0x1 | 0x2 | 0x4 | 0x8


def sanitize_key(key: str) -> str:
    """dockerd's sanitizeKeyMod: a-z upper-cased, other non-[A-Z0-9] as `_`, leading
    `_` dropped."""
    out = ""
    for c in key:
        if "a" <= c <= "z":
            c = c.upper()
        elif not ("A" <= c <= "Z" or "0" <= c <= "9"):
            c = "_"
        if not out and c == "_":
            continue
        out += c
    return out


def validate(opts: Mapping[str, str]) -> None:
    for key in opts:
        if key not in COMMON:
            raise ValueError(f"unknown log opt '{key}' for journald log driver")
    if "tag" in opts:
        check_template(opts["tag"])


def append_field(buf: bytearray, name: str, value: bytes) -> None:
    if b"\n" in value:
        buf += name.encode() + b"\n" + _LEN.pack(len(value)) + value + b"\n"
    else:
        buf += name.encode() + b"=" + value + b"\n"


def encode_entry(message: bytes, priority: int, fields: Mapping[str, str]) -> bytes:
    buf = bytearray()
    append_field(buf, "PRIORITY", str(priority).encode())
    append_field(buf, "MESSAGE", message)
    for k in sorted(fields):
        append_field(buf, k, fields[k].encode("utf-8", "surrogateescape"))
    return bytes(buf)


def enabled(path: str = SOCKET) -> bool:
    """go-systemd's journal.Enabled: the socket exists and takes a connection."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class JournaldDriver:
    def __init__(self, info: ContainerInfo, socket_path: str = SOCKET) -> None:
        validate(driver_options(info.options))
        if not enabled(socket_path):
            raise ValueError("journald is not enabled on this host")
        self.path = socket_path
        tag = render_tag(info)
        self.fields: dict[str, str] = {
            "CONTAINER_ID": info.id[:12], "CONTAINER_ID_FULL": info.id,
            "CONTAINER_NAME": info.value("Name"), "CONTAINER_TAG": tag,
            "IMAGE_NAME": info.image_name, "SYSLOG_IDENTIFIER": tag,
            "CONTAINER_LOG_EPOCH": secrets.token_hex(32)}
        for k, v in extra_attributes(info).items():
            self.fields[sanitize_key(k)] = v
        self.ordinal = 0
        self.partials = PartialTracker()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._closed = False

    def encode(self, msg: Message) -> bytes:
        fields = dict(self.fields)
        fields["SYSLOG_TIMESTAMP"] = local_rfc3339(to_unix_ns(msg.time), 9, trim=True)
        meta = self.partials.meta(msg)
        if meta is not None:
            fields["CONTAINER_PARTIAL_ID"] = meta.id
            fields["CONTAINER_PARTIAL_ORDINAL"] = str(meta.ordinal)
            fields["CONTAINER_PARTIAL_LAST"] = "true" if meta.last else "false"
            if not meta.last:
                fields["CONTAINER_PARTIAL_MESSAGE"] = "true"
        self.ordinal += 1
        fields["CONTAINER_LOG_ORDINAL"] = str(self.ordinal)
        return encode_entry(msg.line, 3 if msg.stream == "stderr" else 6, fields)

    def log(self, msg: Message) -> bool:
        data = self.encode(msg)
        try:
            self._send(data)
        except OSError as e:
            if self._closed:
                raise DriverClosed() from None
            log.warning("journald: message dropped: %s", e)
        return False

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendto(data, self.path)
            return
        except OSError as e:
            if e.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
        fd = os.memfd_create("journal-message", _MFD_CLOEXEC | _MFD_ALLOW_SEALING)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            try:
                fcntl.fcntl(fd, _F_ADD_SEALS, _F_SEAL_ALL)
            except OSError:
                pass
            self.sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                    struct.pack("i", fd))], 0, self.path)
        finally:
            os.close(fd)

    def commit(self) -> Mapping[str, int]:
        return {}

    def close(self) -> None:
        self._closed = True
        self.sock.close()
