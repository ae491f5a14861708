"""The remote log drivers' wire formats, byte for byte, and their option checks with
dockerd's wording (daemon/logger/{syslog,journald,gelf,fluentd})."""
from __future__ import annotations

import gzip
import json
import os
import struct
import threading
import time
import zlib
from typing import Iterator

import msgpack
import pytest

from pydockerd.logdrivers import fluentd, gelf, journald, remote, syslog
from pydockerd.logdrivers.delivery import NonBlocking, Ring
from pydockerd.logdrivers.golike import parse_duration
from pydockerd.logdrivers.journal_read import entry_from_json, journalctl_args
from pydockerd.logdrivers.message import Message
from pydockerd.logdrivers.netio import DriverClosed
from pydockerd.logdrivers.partials import PartialTracker
from pydockerd.logdrivers.tag import ContainerInfo
from pydockerd.util.ids import to_unix_ns

T = "2024-05-01T10:00:00.123456789Z"
NS = to_unix_ns(T)
CID = "0123456789ab" + "c" * 52


@pytest.fixture
def tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("fmt,expected", [
    ("", b"<30>May  1 10:00:00 web[42]: hello\n"),
    ("rfc3164", b"<30>May  1 10:00:00 host1 web[42]: hello\n"),
    ("rfc5424", b"<30>1 2024-05-01T10:00:00Z host1 web 42 web - hello\n"),
    ("rfc5424micro", b"<30>1 2024-05-01T10:00:00.123456Z host1 web 42 web - hello\n"),
])
def test_syslog_formats(tz: None, fmt: str, expected: bytes) -> None:
    assert syslog.format_message(fmt, 30, "host1", "web", 42, b"hello", NS) == expected


def test_syslog_local_zone_and_framing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    try:
        msg = syslog.format_message("rfc5424", 27, "h", "t", 1, b"x", NS)
        assert msg == b"<27>1 2024-05-01T12:00:00+02:00 h t 1 t - x\n"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert syslog.frame("tcp+tls", "rfc5424", b"abc\n") == b"4 abc\n"
    assert syslog.frame("tcp+tls", "rfc3164", b"abc\n") == b"abc\n"
    assert syslog.frame("tcp", "rfc5424", b"abc\n") == b"abc\n"


def test_syslog_priority_by_stream_and_facility(tz: None) -> None:
    info = ContainerInfo(CID, "/web", options={"syslog-address": "udp://127.0.0.1:9",
                                               "syslog-facility": "local3", "tag": "{{.Name}}"})
    d = syslog.SyslogDriver(info, hostname="h", pid=7)
    try:
        assert d.encode(Message("stderr", b"boom", False, T)) == b"<155>May  1 10:00:00 web[7]: boom\n"
        assert d.encode(Message("stdout", b"ok", False, T)).startswith(b"<158>")
    finally:
        d.close()


@pytest.mark.parametrize("opts,error", [
    ({"syslog-address": "foo://x"}, "unsupported scheme: 'foo'"),
    ({"syslog-address": "1.2.3.4:514"},
     'parse "1.2.3.4:514": first path segment in URL cannot contain colon'),
    ({"syslog-address": "unix:///nonexistent/log"},
     "stat /nonexistent/log: no such file or directory"),
    ({"syslog-facility": "bogus"}, "invalid syslog facility"),
    ({"syslog-facility": "24"}, "invalid syslog facility"),
    ({"syslog-format": "rfc9999"}, "Invalid syslog format"),
    ({"syslog-bogus": "1"}, "unknown log opt 'syslog-bogus' for syslog log driver"),
    ({"max-size": "1m"}, "unknown log opt 'max-size' for syslog log driver"),
])
def test_syslog_validation(opts: dict[str, str], error: str) -> None:
    with pytest.raises(ValueError) as e:
        remote.validate("syslog", opts)
    assert str(e.value) == error


def test_syslog_addresses() -> None:
    assert syslog.parse_address("udp://1.2.3.4") == ("udp", "1.2.3.4:514")
    assert syslog.parse_address("tcp://[::1]") == ("tcp", "[::1]:514")
    assert syslog.parse_address("tcp+tls://h:6514") == ("tcp+tls", "h:6514")
    assert syslog.parse_address("") == ("", "")
    remote.validate("syslog", {"syslog-facility": "23", "mode": "non-blocking",
                               "max-buffer-size": "4m", "tag": "{{.ImageName}}"})


def test_journald_native_encoding() -> None:
    data = journald.encode_entry(b"hello", 6, {"B": "two\nlines", "A": "x"})
    assert data == (b"PRIORITY=6\nMESSAGE=hello\nA=x\nB\n" + struct.pack("<Q", 9)
                    + b"two\nlines\n")
    assert journald.sanitize_key("com.example-label") == "COM_EXAMPLE_LABEL"
    assert journald.sanitize_key("_x.y") == "X_Y"


def test_journald_fields_and_partials(tmp_path: str, tz: None) -> None:
    import socket
    path = os.path.join(str(tmp_path), "sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    info = ContainerInfo(CID, "/web", image_name="busybox", labels={"com.x": "1"},
                         options={"labels": "com.x", "tag": "{{.Name}}/{{.ID}}"})
    d = journald.JournaldDriver(info, path)
    try:
        d.log(Message("stdout", b"a" * 10, True, T))
        d.log(Message("stdout", b"end", False, T))
        d.log(Message("stderr", b"err", False, T))
        got = [rx.recv(65536) for _ in range(3)]
    finally:
        d.close()
        rx.close()
    fields = [dict(line.split(b"=", 1) for line in g.rstrip(b"\n").split(b"\n")) for g in got]
    f0 = fields[0]
    assert f0[b"PRIORITY"] == b"6" and f0[b"MESSAGE"] == b"a" * 10
    assert f0[b"CONTAINER_ID"] == CID[:12].encode() and f0[b"CONTAINER_ID_FULL"] == CID.encode()
    assert f0[b"CONTAINER_NAME"] == b"web" and f0[b"IMAGE_NAME"] == b"busybox"
    assert f0[b"CONTAINER_TAG"] == f0[b"SYSLOG_IDENTIFIER"] == f"web/{CID[:12]}".encode()
    assert f0[b"COM_X"] == b"1"
    assert f0[b"SYSLOG_TIMESTAMP"] == T.encode()
    assert f0[b"CONTAINER_PARTIAL_MESSAGE"] == b"true"
    assert f0[b"CONTAINER_PARTIAL_ORDINAL"] == b"1" and f0[b"CONTAINER_LOG_ORDINAL"] == b"1"
    f1 = fields[1]
    assert b"CONTAINER_PARTIAL_MESSAGE" not in f1
    assert f1[b"CONTAINER_PARTIAL_ID"] == f0[b"CONTAINER_PARTIAL_ID"]
    assert f1[b"CONTAINER_PARTIAL_LAST"] == b"true" and f1[b"CONTAINER_PARTIAL_ORDINAL"] == b"2"
    assert fields[2][b"PRIORITY"] == b"3" and b"CONTAINER_PARTIAL_ID" not in fields[2]


def test_journald_validation_and_absent_socket(tmp_path: str) -> None:
    with pytest.raises(ValueError, match="^unknown log opt 'x' for journald log driver$"):
        remote.validate("journald", {"x": "1"})
    with pytest.raises(ValueError, match="^journald is not enabled on this host$"):
        journald.JournaldDriver(ContainerInfo(CID, "/a"), os.path.join(str(tmp_path), "none"))


def test_journal_reader_records() -> None:
    e = entry_from_json({"MESSAGE": "hi", "PRIORITY": "3", "SYSLOG_TIMESTAMP": T})
    assert e is not None and (e.stream, e.data, e.time) == ("stderr", b"hi\n", T)
    e = entry_from_json({"MESSAGE": [104, 255], "PRIORITY": "6",
                         "CONTAINER_PARTIAL_MESSAGE": "true",
                         "__REALTIME_TIMESTAMP": "1714557600123456"})
    assert e is not None and (e.stream, e.data) == ("stdout", b"h\xff")
    assert e.time == "2024-05-01T10:00:00.123456Z"
    assert journalctl_args("abc", tail=5, directory="/d")[-4:] == [
        "--directory", "/d", "--lines=5", "CONTAINER_ID_FULL=abc"]


def test_gelf_message_bytes() -> None:
    info = ContainerInfo(CID, "/web", image_id="sha256:" + "e" * 64, image_name="busybox",
                         command="sh -c x", created="2024-05-01T09:00:00.500000000Z",
                         env=("A=1",), options={"env": "A"})
    extra = gelf.extra_json(info)
    body = gelf.encode_message("h", b'say "<hi>" & \t\x01\xff', NS, 6, extra)
    assert body == (
        b'{"version":"1.1","host":"h","short_message":"say \\"\\u003chi\\u003e\\" \\u0026 '
        b'\\t\\u0001\\ufffd","timestamp":1714557600.123,"level":6,"_A":"1",'
        b'"_command":"sh -c x","_container_id":"' + CID.encode() + b'",'
        b'"_container_name":"web","_created":"2024-05-01T09:00:00.5Z",'
        b'"_image_id":"sha256:' + b"e" * 64 + b'","_image_name":"busybox","_tag":"'
        + CID[:12].encode() + b'"}')
    assert json.loads(body)["short_message"] == 'say "<hi>" & \t\x01\ufffd'
    assert gelf.encode_message("h", b"x", to_unix_ns("2024-05-01T10:00:00Z"), 3, "") == \
        b'{"version":"1.1","host":"h","short_message":"x","timestamp":1714557600,"level":3}'


def test_gelf_chunks_and_compression() -> None:
    data = os.urandom(3000)
    parts = gelf.chunks(data, b"ABCDEFGH")
    assert [len(p) for p in parts] == [1420, 1420, 12 + 3000 - 2816]
    assert [p[:12] for p in parts] == [b"\x1e\x0fABCDEFGH" + bytes((i, 3)) for i in range(3)]
    assert b"".join(p[12:] for p in parts) == data
    assert gelf.chunks(b"x" * 1407) == [b"x" * 1407]
    exact = gelf.chunks(b"x" * 1408)            # go-gelf's off-by-one: an empty 2nd chunk
    assert len(exact) == 2 and len(exact[1]) == 12
    with pytest.raises(ValueError, match="msg too large, would need 129 chunks"):
        gelf.chunks(b"x" * (128 * 1408))
    assert gzip.decompress(gelf.compress(b"abc", "gzip", 1)) == b"abc"
    assert gelf.compress(b"abc", "gzip", 1)[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"
    assert zlib.decompress(gelf.compress(b"abc", "zlib", -1)) == b"abc"
    assert gelf.compress(b"abc", "none", 1) == b"abc"


@pytest.mark.parametrize("opts,error", [
    ({}, "gelf-address is a required parameter"),
    ({"gelf-address": "http://x:1"}, "gelf: endpoint needs to be TCP or UDP"),
    ({"gelf-address": "udp://x"}, "gelf: please provide gelf-address as proto://host:port"),
    ({"gelf-address": "tcp://x:1", "gelf-compression-type": "gzip"},
     "compression is only supported on UDP"),
    ({"gelf-address": "udp://x:1", "gelf-compression-type": "lz4"},
     'unknown value "lz4" for log opt "gelf-compression-type" for gelf log driver'),
    ({"gelf-address": "udp://x:1", "gelf-compression-level": "10"},
     'unknown value "10" for log opt "gelf-compression-level" for gelf log driver'),
    ({"gelf-address": "udp://x:1", "gelf-tcp-max-reconnect": "1"},
     '"gelf-tcp-max-reconnect" is only valid for TCP'),
    ({"gelf-address": "tcp://x:1", "gelf-tcp-reconnect-delay": "-1"},
     '"gelf-tcp-reconnect-delay" must be a positive integer'),
    ({"gelf-address": "udp://x:1", "foo": "1"}, 'unknown log opt "foo" for gelf log driver'),
])
def test_gelf_validation(opts: dict[str, str], error: str) -> None:
    with pytest.raises(ValueError) as e:
        remote.validate("gelf", opts)
    assert str(e.value) == error


def test_fluentd_message_bytes() -> None:
    sec = NS // 10**9
    plain = fluentd.encode_message("web", NS, {"log": b"hi"}, False)
    assert plain == b"\x94\xa3web\xd2" + struct.pack(">i", sec) + b"\x81\xa3log\xa2hi\x80"
    ext = fluentd.encode_message("web", NS, {"log": b"hi"}, True, chunk="c1")
    assert ext == (b"\x94\xa3web\xd7\x00" + struct.pack(">iI", sec, 123456789)
                   + b"\x81\xa3log\xa2hi\x81\xa5chunk\xa2c1")
    long = fluentd.encode_message("t" * 40, NS, {"log": b"x" * 300}, False)
    decoded = msgpack.unpackb(long, raw=False)
    assert decoded == ["t" * 40, sec, {"log": "x" * 300}, {}]
    assert long[1:3] == b"\xd9\x28" and b"\xda\x01\x2c" in long


def test_fluentd_record_fields() -> None:
    info = ContainerInfo(CID, "/web", labels={"l": "v"}, options={"labels": "l", "tag": "app"})
    d = fluentd.FluentdDriver.__new__(fluentd.FluentdDriver)
    d.config = fluentd.parse_config({})
    d.tag = "app"
    d.base = {"container_id": CID, "container_name": "/web"}
    d.extra = {"l": "v"}
    d.partials = PartialTracker()
    data, _ = d.encode(Message("stderr", b"a", True, T))
    tag, sec, record, option = msgpack.unpackb(data, raw=False)
    assert (tag, sec, option) == ("app", NS // 10**9, {})
    assert record["container_id"] == CID and record["container_name"] == "/web"
    assert record["source"] == "stderr" and record["log"] == "a" and record["l"] == "v"
    assert record["partial_message"] == "true" and record["partial_ordinal"] == "1"
    assert record["partial_last"] == "false" and len(record["partial_id"]) == 64
    del info


@pytest.mark.parametrize("opts,error", [
    ({"fluentd-address": "udp://h:1"}, "invalid fluentd-address (udp://h:1): unsupported scheme: 'udp'"),
    ({"fluentd-address": "tcp://h:1/p"},
     "invalid fluentd-address (tcp://h:1/p): should not contain a path element"),
    ({"fluentd-address": "unix://"}, "invalid fluentd-address (unix://): path is empty"),
    ({"fluentd-async": "maybe"}, 'strconv.ParseBool: parsing "maybe": invalid syntax'),
    ({"fluentd-max-retries": "-1"}, 'strconv.ParseUint: parsing "-1": invalid syntax'),
    ({"fluentd-max-retries": "3000000000"}, "invalid fluentd-max-retries: value out of range"),
    ({"fluentd-retry-wait": "5"}, 'time: missing unit in duration "5"'),
    ({"fluentd-buffer-limit": "lots"}, "invalid size: 'lots'"),
    ({"fluentd-async-reconnect-interval": "20s"},
     'invalid value for fluentd-async-reconnect-interval: value ("20s") must be between '
     "100ms and 10s"),
    ({"fluentd-bogus": "1"}, "unknown log opt 'fluentd-bogus' for fluentd log driver"),
])
def test_fluentd_validation(opts: dict[str, str], error: str) -> None:
    with pytest.raises(ValueError) as e:
        remote.validate("fluentd", opts)
    assert str(e.value) == error


def test_fluentd_config() -> None:
    c = fluentd.parse_config({"fluentd-address": "localhost:24225", "fluentd-retry-wait": "1.5s",
                              "fluentd-max-retries": "3", "fluentd-async": "true"})
    assert (c.network, c.address, c.retry_wait_ms, c.max_retries, c.asynchronous) == \
        ("tcp", "localhost:24225", 1500, 3, True)
    assert fluentd.parse_config({"fluentd-address": "unix:///run/f.sock"}).address == "/run/f.sock"
    assert parse_duration("1h2m3.5s") == 3723_500_000_000
    assert parse_duration("250ms") == 250_000_000


class _Slow:
    """A driver whose sends wait for a gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.got: list[bytes] = []
        self.closed = threading.Event()

    def log(self, msg: Message) -> bool:
        if not self.gate.wait(10):
            raise DriverClosed()
        self.got.append(msg.line)
        return False

    def commit(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        self.closed.set()
        self.gate.set()


def test_ring_drops_new_messages_when_full() -> None:
    r = Ring(max_bytes=10)
    assert r.put(Message("stdout", b"x" * 20, False, T))        # an empty ring takes one
    assert not r.put(Message("stdout", b"y", False, T))
    assert r.get() is not None
    assert r.put(Message("stdout", b"z" * 4, False, T))
    assert r.put(Message("stdout", b"z" * 6, False, T))
    assert not r.put(Message("stdout", b"z", False, T))


def test_non_blocking_never_waits_and_drains_on_close() -> None:
    slow = _Slow()
    nb = NonBlocking(slow, max_bytes=100)
    t0 = time.monotonic()
    for i in range(50):
        nb.log(Message("stdout", b"%02d........" % i, False, T))   # 10 bytes each
    assert time.monotonic() - t0 < 0.5
    assert nb.dropped > 0
    slow.gate.set()
    nb.close()
    assert nb.join(10) and slow.closed.is_set()
    assert len(slow.got) == 50 - nb.dropped and slow.got[0] == b"00........"
    assert slow.got == sorted(slow.got)
