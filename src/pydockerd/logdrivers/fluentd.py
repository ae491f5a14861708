"""The fluentd driver: dockerd's (daemon/logger/fluentd over fluent-logger-golang), on
fluentd's forward protocol (Message mode) over tcp or a unix socket.

Each message is the msgpack array [tag, time, record, option]: time an int (Unix
seconds) or, with `fluentd-sub-second-precision`, an EventTime; record
{container_id, container_name, source, log, <labels/env>, and for a split line
partial_message, partial_id, partial_ordinal, partial_last}; option {} or
{"chunk": id} with `fluentd-request-ack` (the reply {"ack": id} is awaited).

Sync (default): connects when the driver starts (a container whose fluentd is
down does not start, as dockerd); a failed write is retried on a new connection
up to `fluentd-max-retries` times (default 2^31-1: it waits for fluentd), each
connection attempt waiting `fluentd-retry-wait` (1s) x int(1.5^(n-1)), at most
60 s. `fluentd-async`: messages queue (at most `fluentd-buffer-limit` of them,
1048576 by default; past it they are dropped) for a sending thread, and start does
not wait for fluentd; the queue is dropped on close, as dockerd does.
"""
from __future__ import annotations

import base64
import logging
import os
import re
from dataclasses import dataclass
from typing import Mapping

from ..util.ids import to_unix_ns
from .delivery import Ring, Sender, driver_options
from .golike import parse_duration, parse_url, split_host_port
from .message import Message
from .msgpackenc import event_time, pack_int, pack_str, pack_str_map, unpack_str_map
from .netio import Conn, DriverClosed, dial_error
from .golike import parse_bool, ram_in_bytes
from .partials import PartialTracker
from .tag import ContainerInfo, check_template, extra_attributes, render_tag

log = logging.getLogger("pydockerd.logs")

COMMON = ("env", "env-regex", "labels", "labels-regex", "tag")
OPTIONS = ("fluentd-address", "fluentd-async", "fluentd-async-reconnect-interval",
           "fluentd-buffer-limit", "fluentd-max-retries", "fluentd-request-ack",
           "fluentd-retry-wait", "fluentd-sub-second-precision", "fluentd-write-timeout",
           "fluentd-read-timeout")
MAX_RETRY_WAIT_MS = 60_000
_MS = 1_000_000


@dataclass(frozen=True)
class FluentConfig:
    network: str = "tcp"              # tcp | tls | unix
    address: str = "127.0.0.1:24224"  # host:port or a socket path
    buffer_limit: int = 1024 * 1024
    retry_wait_ms: int = 1000
    max_retries: int = 2**31 - 1
    asynchronous: bool = False
    sub_second: bool = False
    request_ack: bool = False
    write_timeout_ns: int = 0
    read_timeout_ns: int = 0


def _address(raw: str) -> tuple[str, str]:
    if not raw:
        return "tcp", "127.0.0.1:24224"
    url = parse_url(raw if "://" in raw else "tcp://" + raw)
    if url.scheme == "unix":
        if not url.path.strip("/"):
            raise ValueError("path is empty")
        return "unix", url.path
    if url.scheme not in ("tcp", "tls"):
        raise ValueError(f"unsupported scheme: '{url.scheme}'")
    if url.path:
        raise ValueError("should not contain a path element")
    try:
        host, port = split_host_port(url.host)
    except ValueError:
        host, port = url.host, ""
    host = host.strip("[]") or "127.0.0.1"
    if port:
        if not port.isdigit() or int(port) > 65535:
            raise ValueError(f'invalid port: strconv.ParseUint: parsing "{port}": '
                             + ("invalid syntax" if not port.isdigit() else "value out of range"))
    return url.scheme, (f"[{host}]" if ":" in host else host) + ":" + (port or "24224")


def _duration(key: str, val: str) -> int:
    try:
        d = parse_duration(val)
    except ValueError as e:
        raise ValueError(f"invalid value for {key}: value must be a duration: {e}") from None
    if d < 0:
        raise ValueError(f"invalid value for {key}: value must be a duration that is "
                         "non-negative")
    return d


def parse_config(opts: Mapping[str, str]) -> FluentConfig:
    """dockerd's parseConfig, wording included."""
    raw = opts.get("fluentd-address", "")
    try:
        network, address = _address(raw)
    except ValueError as e:
        raise ValueError(f"invalid fluentd-address ({raw}): {e}") from None
    limit = 1024 * 1024
    if opts.get("fluentd-buffer-limit"):
        limit = ram_in_bytes(opts["fluentd-buffer-limit"])
    wait = 1000
    if opts.get("fluentd-retry-wait"):
        wait = parse_duration(opts["fluentd-retry-wait"]) // _MS
    retries = 2**31 - 1
    if opts.get("fluentd-max-retries"):
        s = opts["fluentd-max-retries"]
        if not re.fullmatch(r"\d+", s):
            raise ValueError(f'strconv.ParseUint: parsing "{s}": invalid syntax')
        if int(s) >= 2**32:
            raise ValueError(f'strconv.ParseUint: parsing "{s}": value out of range')
        if int(s) > 2**31 - 1:
            raise ValueError("invalid fluentd-max-retries: value out of range")
        retries = int(s)
    flags = {}
    for key in ("fluentd-async", "fluentd-sub-second-precision", "fluentd-request-ack"):
        flags[key] = parse_bool(opts[key]) if opts.get(key) else False
    if opts.get("fluentd-async-reconnect-interval"):
        key = "fluentd-async-reconnect-interval"
        try:
            iv = parse_duration(opts[key])
        except ValueError as e:
            raise ValueError(f"invalid value for {key}: {e}") from None
        if iv and not 100 * _MS <= iv <= 10_000 * _MS:
            raise ValueError(f'invalid value for {key}: value ("{opts[key]}") must be between '
                             "100ms and 10s")
    write_to = _duration("fluentd-write-timeout", opts["fluentd-write-timeout"]) \
        if opts.get("fluentd-write-timeout") else 0
    read_to = _duration("fluentd-read-timeout", opts["fluentd-read-timeout"]) \
        if opts.get("fluentd-read-timeout") else 0
    return FluentConfig(network, address, limit, wait, retries, flags["fluentd-async"],
                        flags["fluentd-sub-second-precision"], flags["fluentd-request-ack"],
                        write_to, read_to)


def validate(opts: Mapping[str, str]) -> None:
    for key in opts:
        if key not in OPTIONS and key not in COMMON:
            raise ValueError(f"unknown log opt '{key}' for fluentd log driver")
    parse_config(opts)
    if "tag" in opts:
        check_template(opts["tag"])


def encode_message(tag: str, ns: int, record: Mapping[str, bytes | str], sub_second: bool,
                   chunk: str = "") -> bytes:
    """fluent-logger-golang's Message / MessageExt (a 4-array)."""
    t = event_time(ns) if sub_second else pack_int(ns // 1_000_000_000)
    option = pack_str_map({"chunk": chunk} if chunk else {})
    return b"\x94" + pack_str(tag) + t + pack_str_map(record) + option


class FluentdDriver:
    def __init__(self, info: ContainerInfo) -> None:
        validate(driver_options(info.options))
        self.config = cfg = parse_config(info.options)
        self.tag = render_tag(info)
        self.base: dict[str, bytes | str] = {"container_id": info.id,
                                             "container_name": "/" + info.value("Name")}
        self.extra = extra_attributes(info)
        self.partials = PartialTracker()
        self.conn = Conn("unix" if cfg.network == "unix" else "tcp", cfg.address,
                         connect_timeout=3.0)
        self.sender: Sender | None = None
        if cfg.asynchronous:
            self.sender = Sender(_Direct(self), Ring(max_count=cfg.buffer_limit),
                                 f"fluentd-{info.id[:12]}")
            return
        try:
            self.conn.connect()
        except (OSError, ValueError) as e:
            raise ValueError(dial_error(self.conn.network, cfg.address, e)) from None

    def encode(self, msg: Message) -> tuple[bytes, str]:
        record: dict[str, bytes | str] = dict(self.base)
        record["source"] = msg.stream
        record["log"] = msg.line
        record.update(self.extra)
        meta = self.partials.meta(msg)
        if meta is not None:
            record.update({"partial_message": "true", "partial_id": meta.id,
                           "partial_ordinal": str(meta.ordinal),
                           "partial_last": "true" if meta.last else "false"})
        chunk = base64.b64encode(os.urandom(16)).decode() if self.config.request_ack else ""
        return encode_message(self.tag, to_unix_ns(msg.time), record, self.config.sub_second,
                              chunk), chunk

    def log(self, msg: Message) -> bool:
        if self.sender is not None:
            if not self.sender.ring.put(msg):
                log.warning("fluentd: buffer full, limit %d: message dropped",
                            self.config.buffer_limit)
            return False
        self.deliver(msg)
        return False

    def deliver(self, msg: Message) -> None:
        data, chunk = self.encode(msg)
        for _ in range(self.config.max_retries):
            self._connect_with_retry()
            try:
                self.conn.send(data)
                if chunk and not self._acked(chunk):
                    self.conn.drop()
                    continue
                return
            except DriverClosed:
                raise
            except OSError:
                self.conn.drop()
        log.warning("fluentd: message dropped: failed to write after %d attempts",
                    self.config.max_retries)

    def _connect_with_retry(self) -> None:
        if self.conn.connected:
            return
        for i in range(self.config.max_retries):
            try:
                self.conn.connect()
                return
            except DriverClosed:
                raise
            except OSError:
                factor = int(1.5 ** (i - 1))
                self.conn.wait(min(self.config.retry_wait_ms * factor, MAX_RETRY_WAIT_MS) / 1e3)
        raise OSError(f"could not connect to fluentd after {self.config.max_retries} retries")

    def _acked(self, chunk: str) -> bool:
        buf = b""
        while True:
            got = unpack_str_map(buf)
            if got is not None:
                return got[0].get("ack") == chunk
            data = self.conn.recv(4096)
            if not data:
                return False
            buf += data

    def commit(self) -> Mapping[str, int]:
        return {}

    def close(self) -> None:
        if self.sender is not None:
            self.sender.abandon()       # ForceStopAsyncSend, as dockerd sets with async
        self.conn.close()


class _Direct:
    """The async sender's view of the driver: deliver now."""

    def __init__(self, driver: FluentdDriver) -> None:
        self.driver = driver

    def log(self, msg: Message) -> bool:
        self.driver.deliver(msg)
        return False

    def commit(self) -> Mapping[str, int]:
        return {}

    def close(self) -> None:
        self.driver.conn.close()
