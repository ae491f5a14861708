"""Log drivers without a daemon: conmon records -> messages, dockerd's json-file bytes,
rotation names and sizes, recovery after a crash, reading back across rotations."""
from __future__ import annotations

import asyncio
import gzip
import json
import os
from pathlib import Path

import pytest

from pydockerd.errors import InvalidParameter
from pydockerd.logdrivers import jsonfile, local, options
from pydockerd.logdrivers.goformat import fixed_nano, go_json_string, go_time
from pydockerd.logdrivers.jsonfile import JsonFileDriver
from pydockerd.logdrivers.message import Message
from pydockerd.logdrivers.reader import LogQuery, read_entries
from pydockerd.logdrivers.spool import Assembler
from pydockerd.logdrivers.tag import ContainerInfo

TS = "2024-05-01T10:00:00.120000000+00:00"


class Collect:
    def __init__(self) -> None:
        self.msgs: list[Message] = []

    def log(self, msg: Message) -> bool:
        self.msgs.append(msg)
        return False

    def commit(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        pass


def test_go_json_string_matches_dockerd() -> None:
    # the bytes dockerd 20.10 wrote for the same output (probed)
    raw = b'a\tb<>&\x01\x7f \xe2\x80\xa8 x\\y\\"q\r\n'
    assert go_json_string(raw) == \
        '"a\\u0009b\\u003c\\u003e\\u0026\\u0001\x7f \\u2028 x\\\\y\\\\\\"q\\r\\n"'
    assert go_json_string(b"\xff\xe2\x82 z\n") == '"\\ufffd\\ufffd\\ufffd z\\n"'
    assert go_json_string("é€\ufffd".encode()) == '"é€\ufffd"'


def test_go_time() -> None:
    assert go_time(TS) == "2024-05-01T10:00:00.12Z"
    assert go_time("2024-05-01T10:00:00.000000000+00:00") == "2024-05-01T10:00:00Z"
    assert go_time("2024-05-01T12:00:00.500000000+02:00") == "2024-05-01T10:00:00.5Z"
    assert fixed_nano("2024-05-01T10:00:00.12Z") == "2024-05-01T10:00:00.120000000Z"


def test_assembler_joins_pieces_and_cuts_16k() -> None:
    out = Collect()
    a = Assembler({})
    big = b"x" * 40000
    data = (f"{TS} stdout P ".encode() + big[:8192] + b"\n"
            + f"{TS} stderr F err".encode() + b"\n"
            + b"2024-05-01T10:00:01.000000000+00:00 stdout F " + big[8192:] + b"\n"
            + f"{TS} stdout F ".encode() + b"\n"
            + f"{TS} stdout P tail".encode() + b"\n" + b"2024-05-01T1")
    used = a.feed(data, out, lambda end: None)
    assert data[used:] == b"2024-05-01T1"
    got = [(m.stream, len(m.line), m.partial, m.time) for m in out.msgs]
    assert got == [("stderr", 3, False, TS), ("stdout", 16384, True, TS),
                   ("stdout", 16384, True, TS), ("stdout", 40000 - 32768, False, TS),
                   ("stdout", 0, False, TS)]
    assert a.pending == {"stdout": (TS, b"tail")}
    a.flush(out)
    assert out.msgs[-1] == Message("stdout", b"tail", True, TS)


def test_options_validation_wording() -> None:
    for driver, opts, msg in [
            ("json-file", {"foo": "1"}, "unknown log opt 'foo' for json-file log driver"),
            ("local", {"labels": "x"}, "unknown log opt 'labels' for log driver local"),
            ("json-file", {"max-size": "abc"}, "invalid size: 'abc'"),
            ("json-file", {"max-file": "0"}, "max-file cannot be less than 1"),
            ("json-file", {"compress": "true"}, "compress cannot be true"),
            ("local", {"max-file": "1"}, "compression cannot be enabled when max file count"),
            ("json-file", {"mode": "bad"}, "logger: logging mode not supported: bad"),
            ("json-file", {"max-buffer-size": "4m"}, "only supported with 'mode=non-blocking'"),
            ("gcplogs", {}, "gcplogs log driver needs a cloud service"),
            ("journald", {"foo": "1"}, "unknown log opt 'foo' for journald log driver"),
            ("syslog", {"cache-disabled": "maybe"}, "invalid value for option cache-disabled"),
            ("syslog", {"cache-max-size": "x"}, "error initializing local log cache driver"),
            ("bogus", {}, 'error looking up logging plugin bogus: plugin "bogus" not found'),
            ("json-file", {"tag": "{{.Nope}}"}, "can't evaluate field Nope")]:
        with pytest.raises(InvalidParameter) as e:
            options.validate(driver, opts)
        assert msg in e.value.message, (driver, opts)
    options.validate("json-file", {"max-size": "1.5m", "max-file": "3", "compress": "1",
                                   "mode": "non-blocking", "max-buffer-size": "4m",
                                   "tag": "{{.Name}}/{{.ID}}", "cache-disabled": "true"})
    options.validate("none", {"anything": "x"})
    assert options.merge_defaults(None, "json-file", {"max-size": "1m"}) == \
        {"Type": "json-file", "Config": {"max-size": "1m"}}
    assert options.merge_defaults({"Type": "local"}, "json-file", {"max-size": "1m"}) == \
        {"Type": "local", "Config": {}}
    # the daemon's dual-logging cache options apply to every driver, as dockerd's
    assert options.merge_defaults({"Type": "gelf"}, "json-file",
                                  {"max-size": "1m", "cache-disabled": "true"}) == \
        {"Type": "gelf", "Config": {"cache-disabled": "true"}}
    assert options.readable("syslog", {}) and options.readable("journald", {})
    assert not options.readable("syslog", {"cache-disabled": "true"})
    assert not options.readable("none", {})
    assert options.cache_options({"cache-max-size": "1k", "cache-max-file": "2"}) == \
        options.FileOptions(1000, 2, True)


def _info(**opts: str) -> ContainerInfo:
    return ContainerInfo(id="ab" * 32, name="web", labels={"l1": "v", "l2": "w"},
                         env=("A=b", "C=d"), options=opts)


def _msg(i: int) -> Message:
    return Message("stdout", f"line{i:05d}".encode(), False, TS)


def test_json_file_rotation_names_sizes_and_gzip_header(tmp_path: Path) -> None:
    path = str(tmp_path / "c-json.log")
    drv = JsonFileDriver(path, _info(**{"max-size": "1k", "max-file": "3", "compress": "true"}))
    for i in range(100):
        if drv.log(_msg(i)):
            drv.commit()
    drv.commit()
    drv.close()
    assert sorted(os.listdir(tmp_path)) == ["c-json.log", "c-json.log.1.gz", "c-json.log.2.gz"]
    one = Path(path + ".1.gz").read_bytes()
    extra = b'{"lastTime":"2024-05-01T10:00:00.12Z"}'      # as dockerd's compressFile
    assert one[:12 + len(extra)] == b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff" \
        + len(extra).to_bytes(2, "little") + extra
    lines = [ln for f in (path + ".2.gz", path + ".1.gz") for ln in gzip.open(f).read()
             .splitlines()] + Path(path).read_bytes().splitlines()
    nums = [int(json.loads(ln)["log"][4:9]) for ln in lines]
    assert nums == list(range(nums[0], 100))
    for f in (path + ".2.gz", path + ".1.gz"):
        size = len(gzip.open(f).read())
        # rotated before the write that found it at max-size (dockerd's rule; "1k"
        # is 1000 bytes: go-units FromHumanSize, as dockerd's json-file)
        assert 1000 <= size < 1000 + len(lines[0]) + 1
    first = json.loads(lines[0])
    assert list(first) == ["log", "stream", "time"]


def test_attrs_and_tag(tmp_path: Path) -> None:
    path = str(tmp_path / "c-json.log")
    drv = JsonFileDriver(path, _info(labels="l1", env="A", tag="{{.Name}}/{{.ID}}"))
    drv.log(_msg(1))
    drv.commit()
    assert Path(path).read_text() == (
        '{"log":"line00001\\n","stream":"stdout","attrs":{"A":"b","l1":"v",'
        '"tag":"web/abababababab"},"time":"2024-05-01T10:00:00.12Z"}\n')


def test_reopen_truncates_what_the_cursor_did_not_record(tmp_path: Path) -> None:
    path = str(tmp_path / "c-json.log")
    drv = JsonFileDriver(path, _info())
    drv.log(_msg(1))
    pos = dict(drv.commit())
    drv.log(_msg(2))
    drv.commit()              # written, but the crash came before the cursor was saved
    drv.close()
    drv = JsonFileDriver(path, _info(), pos)
    drv.log(_msg(2))
    drv.commit()
    drv.close()
    assert [json.loads(ln)["log"] for ln in Path(path).read_text().splitlines()] == \
        ["line00001\n", "line00002\n"]


def test_local_format_round_trip(tmp_path: Path) -> None:
    rec = local.encode(Message("stdout", b"hello local", False,
                               "2026-11-30T08:47:15.698819384+00:00"))
    # dockerd's local driver: length, protobuf LogEntry, length
    assert rec[:4] == rec[-4:] == len(rec[4:-4]).to_bytes(4, "big")
    assert rec[4:12] == b"\n\x06stdout" and rec.endswith(b"\x1a\x0bhello local" + rec[:4])
    recs, used = local.split_records(rec + rec[:3])
    assert used == len(rec) and len(recs) == 1
    e = local.decode(recs[0])
    assert e is not None and e.data == b"hello local\n"
    assert e.time == "2026-11-30T08:47:15.698819384Z"


@pytest.mark.parametrize("compress", ["true", "false"])
def test_reader_tail_and_all_across_rotated_files(tmp_path: Path, compress: str) -> None:
    path = str(tmp_path / "c-json.log")
    drv = JsonFileDriver(path, _info(**{"max-size": "2k", "max-file": "4",
                                         "compress": compress}))
    for i in range(200):
        if drv.log(_msg(i)):
            drv.commit()
    drv.commit()
    drv.close()

    async def read(q: LogQuery) -> list[bytes]:
        async def changed(t: float) -> None:
            await asyncio.sleep(t)
        return [e.data async for b in read_entries(path, "json-file", q, lambda: False, changed)
                for e in b]
    everything = asyncio.run(read(LogQuery()))
    first = int(everything[0][4:9])
    assert everything == [f"line{i:05d}\n".encode() for i in range(first, 200)]
    assert asyncio.run(read(LogQuery(tail=3))) == everything[-3:]
    n = len(everything) - 5                 # reaches into the rotated files
    assert asyncio.run(read(LogQuery(tail=n))) == everything[-n:]
    assert asyncio.run(read(LogQuery(tail=0))) == []
    assert asyncio.run(read(LogQuery(stdout=False))) == []


def test_json_file_parse_decodes_a_chunk_and_skips_what_is_not_dockerds() -> None:
    good = [b'{"log":"a\\u003c\\n","stream":"stdout","time":"2024-05-01T10:00:00.1Z"}',
            b'{"log":"b","stream":"stderr","attrs":{"k":"v"},"time":"2024-05-01T10:00:00.2Z"}']
    fast, used = jsonfile.parse(b"\n".join(good) + b'\n{"log":"c')     # a torn last line
    assert used == len(b"\n".join(good)) + 1
    assert [(e.stream, e.data, e.time, e.attrs) for e in fast] == [
        ("stdout", b"a<\n", "2024-05-01T10:00:00.1Z", ()),
        ("stderr", b"b", "2024-05-01T10:00:00.2Z", (("k", "v"),))]
    # a foreign or broken line in the chunk: the others are still read, as before
    odd = [good[0], b"not json", b'{"log":null,"stream":"stdout","time":""}', b"7", good[1]]
    slow, _ = jsonfile.parse(b"\n".join(odd) + b"\n")
    assert [e.data for e in slow] == [b"a<\n", b"", b"b"]
    assert slow == [e for e in map(jsonfile.decode, odd) if e is not None]
    assert jsonfile.parse(b'{"log":"x"') == ([], 0)


def test_file_sizes_are_decimal_as_dockerds() -> None:
    # json-file and local parse max-size with go-units FromHumanSize (checked against
    # dockerd 20.10: max-size=10k rotates at 10,000 bytes); buffer sizes stay binary
    assert options.file_options("json-file", {"max-size": "10k"}).capacity == 10_000
    assert options.file_options("json-file", {"max-size": "1.5mb"}).capacity == 1_500_000
    assert options.file_options("json-file", {"max-size": "100MiB"}).capacity == 100_000_000
    assert options.file_options("local", {"max-size": "20m"}).capacity == 20_000_000
    assert options.file_options("local", {}).capacity == 20 << 20      # the default
    assert options.cache_options({"cache-max-size": "1k"}).capacity == 1000
