"""The syslog driver: dockerd's (daemon/logger/syslog over RackSec/srslog), byte for byte.

Formats (`syslog-format`), with PRI = facility | severity (6 stdout, 3 stderr):
  ""            <PRI>Jan _2 15:04:05 TAG[PID]: LINE\\n          (srslog UnixFormatter)
  rfc3164       <PRI>Jan _2 15:04:05 HOST TAG[PID]: LINE\\n
  rfc5424       <PRI>1 2006-01-02T15:04:05Z07:00 HOST TAG PID TAG - LINE\\n
  rfc5424micro  as rfc5424 with `.000000` microseconds
over tcp+tls the rfc5424 formats are octet-counted (`LEN MSG`, RFC 5425); otherwise a
message is sent as is (one datagram, or newline-ended on a stream). PID is the
daemon's, HOST the daemon's hostname, times in the daemon's local zone. One
difference: dockerd stamps the time of sending, pydockerd the line's own time (a
line read back from the spool after a daemon restart keeps its time). Empty lines
are not sent. A failed send is retried once on a new connection, then dropped
with a warning, as srslog does.
"""
from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Mapping

from ..util.ids import to_unix_ns
from ..util.tlsdefer import ensure_ssl
from .golike import join_host_port, local_rfc3339, local_stamp, parse_url, split_host_port
from .delivery import driver_options
from .message import Message
from .netio import Conn, DriverClosed, dial_error
from .tag import ContainerInfo, check_template, render_tag

if TYPE_CHECKING:
    import ssl

log = logging.getLogger("pydockerd.logs")

OPTIONS = ("syslog-address", "syslog-facility", "syslog-tls-ca-cert", "syslog-tls-cert",
           "syslog-tls-key", "syslog-tls-skip-verify", "syslog-format")
COMMON = ("env", "env-regex", "labels", "labels-regex", "tag")
FACILITIES = {"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
              "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "local0": 16,
              "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21,
              "local6": 22, "local7": 23}
FORMATS = ("", "rfc3164", "rfc5424", "rfc5424micro")
LOCAL_PATHS = ("/dev/log", "/var/run/syslog", "/var/run/log")


def parse_address(address: str) -> tuple[str, str]:
    """(network, address); ("", "") for the local syslog. ValueError as dockerd."""
    if not address:
        return "", ""
    url = parse_url(address)
    if url.scheme in ("unix", "unixgram"):
        try:
            os.stat(url.path)
        except OSError as e:
            raise ValueError(f"stat {url.path}: {(e.strerror or str(e)).lower()}") from None
        return url.scheme, url.path
    if url.scheme not in ("udp", "tcp", "tcp+tls"):
        raise ValueError(f"unsupported scheme: '{url.scheme}'")
    host = url.host
    try:
        split_host_port(host)
    except ValueError as e:
        if "missing port in address" not in str(e):
            raise
        host = join_host_port(host.strip("[]"), "514")
    return url.scheme, host


def parse_facility(facility: str) -> int:
    """The facility part of PRI (already shifted); default daemon."""
    if not facility:
        return FACILITIES["daemon"] << 3
    if facility in FACILITIES:
        return FACILITIES[facility] << 3
    if facility.lstrip("+-").isdigit() and 0 <= int(facility) <= 23:
        return int(facility) << 3
    raise ValueError("invalid syslog facility")


def parse_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError("Invalid syslog format")
    return fmt


def validate(opts: Mapping[str, str]) -> None:
    """dockerd's syslog ValidateLogOpt (names, address, facility, format) and the tag."""
    for key in opts:
        if key not in OPTIONS and key not in COMMON:
            raise ValueError(f"unknown log opt '{key}' for syslog log driver")
    parse_address(opts.get("syslog-address", ""))
    parse_facility(opts.get("syslog-facility", ""))
    parse_format(opts.get("syslog-format", ""))
    if "tag" in opts:
        check_template(opts["tag"])


def format_message(fmt: str, pri: int, hostname: str, tag: str, pid: int, line: bytes,
                   ns: int) -> bytes:
    """One syslog message (without framing), as srslog + dockerd's formatters write it."""
    content = line if line.endswith(b"\n") else line + b"\n"
    if fmt == "":
        head = f"<{pri}>{local_stamp(ns)} {tag}[{pid}]: "
    elif fmt == "rfc3164":
        head = f"<{pri}>{local_stamp(ns)} {hostname} {tag}[{pid}]: "
    else:
        ts = local_rfc3339(ns, 6 if fmt == "rfc5424micro" else 0)
        head = f"<{pri}>1 {ts} {hostname} {tag} {pid} {tag} - "
    return head.encode() + content


def frame(network: str, fmt: str, message: bytes) -> bytes:
    if network == "tcp+tls" and fmt.startswith("rfc5424"):
        return str(len(message)).encode() + b" " + message
    return message


def tls_context(opts: Mapping[str, str]) -> ssl.SSLContext:
    """go-connections tlsconfig.Client: the CA (else the system's), a client cert, and
    skip-verify when the option is present at all (whatever its value), as dockerd."""
    ensure_ssl()                # not loaded before the first tcp+tls driver (util/tlsdefer.py)
    import ssl
    ctx = ssl.create_default_context(cafile=opts.get("syslog-tls-ca-cert") or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if opts.get("syslog-tls-cert") or opts.get("syslog-tls-key"):
        ctx.load_cert_chain(opts.get("syslog-tls-cert", ""), opts.get("syslog-tls-key") or None)
    if "syslog-tls-skip-verify" in opts:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _dial_local() -> Conn:
    for network in ("unixgram", "unix"):
        for path in LOCAL_PATHS:
            conn = Conn(network, path)
            try:
                conn.connect()
                return conn
            except OSError:
                continue
    raise ValueError("Unix syslog delivery error")


class SyslogDriver:
    """Connects at construction (a container whose syslog cannot be reached does not
    start, as dockerd); ValueError with dockerd's text."""

    def __init__(self, info: ContainerInfo, hostname: str | None = None,
                 pid: int | None = None) -> None:
        opts = info.options
        validate(driver_options(opts))
        self.tag = render_tag(info)
        self.network, address = parse_address(opts.get("syslog-address", ""))
        self.facility = parse_facility(opts.get("syslog-facility", ""))
        self.fmt = parse_format(opts.get("syslog-format", ""))
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self.pid = pid if pid is not None else os.getpid()
        if not self.network:
            self.conn = _dial_local()
            return
        tls = None
        if self.network == "tcp+tls":
            try:
                tls = tls_context(opts)
            except OSError as e:    # ssl.SSLError is an OSError
                raise ValueError(f"syslog: TLS configuration: {e}") from None
        self.conn = Conn(self.network, address, tls)
        try:
            self.conn.connect()
        except (OSError, ValueError) as e:
            raise ValueError(dial_error(self.network, address, e)) from None

    def encode(self, msg: Message) -> bytes:
        pri = self.facility | (3 if msg.stream == "stderr" else 6)
        body = format_message(self.fmt, pri, self.hostname, self.tag, self.pid, msg.line,
                              to_unix_ns(msg.time))
        return frame(self.network, self.fmt, body)

    def log(self, msg: Message) -> bool:
        if not msg.line:
            return False
        data = self.encode(msg)
        for attempt in (1, 2):
            try:
                self.conn.send(data)
                return False
            except DriverClosed:
                raise
            except OSError as e:
                if attempt == 2:
                    log.warning("syslog %s: message dropped: %s", self.tag, e)
        return False

    def commit(self) -> Mapping[str, int]:
        return {}

    def close(self) -> None:
        self.conn.close()
