"""The remote log drivers against real receivers: rsyslogd (UDP, TCP, unix datagram
and stream sockets), systemd-journald (read back with journalctl), and in-test GELF
and fluentd receivers decoding the real wire formats; delivery modes against a
stalled endpoint. The drivers are called directly, as the log pipeline calls them."""
from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from logreceivers import (Fluentd, GelfTcp, GelfUdp, Journald, Rsyslog, StreamServer, free_port,
                          journal, rsyslog)
from polling import wait_until
from pydockerd.logdrivers import remote
from pydockerd.logdrivers.journal_read import read_journal
from pydockerd.logdrivers.message import Message
from pydockerd.logdrivers.netio import DriverClosed
from pydockerd.logdrivers.tag import ContainerInfo
from pydockerd.util.ids import new_id, now_rfc3339

HOST = socket.gethostname()
__all__ = ["journal", "rsyslog"]         # fixtures (logreceivers.py)


def info(opts: dict[str, str], **kw: str) -> ContainerInfo:
    cid = new_id()
    return ContainerInfo(cid, "/web-" + cid[:6], image_id="sha256:" + "a" * 64,
                         image_name="busybox:latest", command="sh -c echo",
                         created="2024-05-01T10:00:00.5Z", labels={"com.example.l": "lv"},
                         env=("SECRET=s3", "OTHER=o"), options=opts, **kw)


def msg(line: bytes, stream: str = "stdout", partial: bool = False) -> Message:
    return Message(stream, line, partial, now_rfc3339())


@pytest.mark.parametrize("address", ["udp", "tcp", "tls", "unixgram", "unix"])
def test_syslog_to_rsyslog(rsyslog: Rsyslog, address: str) -> None:
    url = {"udp": f"udp://127.0.0.1:{rsyslog.udp}", "tcp": f"tcp://127.0.0.1:{rsyslog.tcp}",
           "tls": f"tcp+tls://localhost:{rsyslog.tls}",
           "unixgram": f"unixgram://{rsyslog.dgram}", "unix": f"unix://{rsyslog.stream}"}[address]
    results = {}
    for fmt in ("", "rfc3164", "rfc5424", "rfc5424micro"):
        opts = {"syslog-address": url, "syslog-format": fmt, "syslog-facility": "local2",
                "tag": "{{.Name}}-" + (fmt or "unix")}
        if address == "tls":             # rfc5424 over TLS is octet-counted (RFC 5425)
            opts["syslog-tls-ca-cert"] = rsyslog.ca
        i = info(opts)
        d = remote.open_remote("syslog", i)
        try:
            d.log(msg(b"out " + fmt.encode()))
            d.log(msg(b""))                                   # not sent, as dockerd
            d.log(msg(b"err " + fmt.encode(), "stderr"))
        finally:
            d.close()
        got = rsyslog.wait_for(f"{i.value('Name')}-{fmt or 'unix'}", 2)
        results[fmt] = [g.split("|") for g in got]
    pid = str(os.getpid())
    for fmt, rows in results.items():
        (pri1, _, host1, tag1, app1, proc1, text1), (pri2, *_rest, text2) = rows
        assert (pri1, pri2) == ("150", "147"), fmt          # local2: 18 << 3 | 6, | 3
        # rsyslog's own-socket input does not look for a hostname: with rfc3164 it is
        # taken as the tag and the rest is the message (as with dockerd's)
        assert text1.strip().endswith(("out " + fmt).strip())
        assert text2.strip().endswith(("err " + fmt).strip())
        if fmt.startswith("rfc5424"):
            assert app1.endswith(fmt) and proc1 == pid and host1 == HOST
        elif fmt == "" or address != "unixgram":
            assert tag1.endswith(f"[{pid}]:") and tag1.startswith("web-")
        if fmt == "rfc3164" and address != "unixgram":
            assert host1 == HOST


def test_syslog_tls_verifies_the_server(rsyslog: Rsyslog) -> None:
    with pytest.raises(ValueError, match="CERTIFICATE_VERIFY_FAILED"):
        remote.open_remote("syslog", info({"syslog-address": f"tcp+tls://localhost:{rsyslog.tls}"}))
    d = remote.open_remote("syslog", info({"syslog-address": f"tcp+tls://localhost:{rsyslog.tls}",
                                           "syslog-tls-skip-verify": "false", "tag": "skipv"}))
    try:                                   # present at all: skip (as dockerd)
        d.log(msg(b"unverified"))
    finally:
        d.close()
    rsyslog.wait_for("unverified")


def test_syslog_unreachable_endpoint_fails_start() -> None:
    port = free_port()
    with pytest.raises(ValueError, match=f"^dial tcp 127.0.0.1:{port}: connect: "
                                         "connection refused$"):
        remote.open_remote("syslog", info({"syslog-address": f"tcp://127.0.0.1:{port}"}))


def test_syslog_tcp_reconnects_after_rsyslog_restart(tmp_path: Path) -> None:
    r = Rsyslog(tmp_path)
    d = remote.open_remote("syslog", info({"syslog-address": f"tcp://127.0.0.1:{r.tcp}",
                                           "tag": "restart"}))
    try:
        d.log(msg(b"before"))
        r.wait_for("before")
        r.stop()
        r2 = Rsyslog(tmp_path, r.udp, r.tcp, r.tls)          # same ports and file
        try:
            for n in range(3):          # the first write after the restart may be lost
                d.log(msg(b"after %d" % n))   # by TCP itself; srslog reconnects
            r2.wait_for("after 2")
        finally:
            r2.stop()
    finally:
        d.close()


def test_journald_real_journal_and_read_back(journal: Journald) -> None:
    i = info({"labels": "com.example.l", "env": "SECRET", "tag": "{{.ImageName}}"})
    d = remote.open_remote("journald", i, journald_socket=journal.socket)
    big = b"x" * 300_000                      # over the datagram limit: sent as a memfd
    try:
        d.log(msg(b"hello journal"))
        d.log(msg(b"first piece ", partial=True))
        d.log(msg(b"last piece"))
        d.log(msg(b"to stderr", "stderr"))
        d.log(msg(big))
    finally:
        d.close()
    recs = wait_until(lambda: (lambda r: r if len(r) >= 5 else None)(
        journal.records(f"CONTAINER_ID_FULL={i.id}")), 20, what="journal records")
    first = recs[0]
    assert first["MESSAGE"] == "hello journal" and first["PRIORITY"] == "6"
    assert first["CONTAINER_ID"] == i.id[:12] and first["CONTAINER_NAME"] == i.value("Name")
    assert first["CONTAINER_TAG"] == first["SYSLOG_IDENTIFIER"] == "busybox:latest"
    assert first["IMAGE_NAME"] == "busybox:latest"
    assert first["COM_EXAMPLE_L"] == "lv" and first["SECRET"] == "s3"
    assert recs[1]["CONTAINER_PARTIAL_MESSAGE"] == "true"
    assert "CONTAINER_PARTIAL_MESSAGE" not in recs[2]
    assert recs[3]["PRIORITY"] == "3"
    assert len(recs[4]["MESSAGE"]) == len(big)

    async def read_back() -> list[tuple[str, bytes]]:
        return [(e.stream, e.data) async for e in read_journal(
            i.id, directory=journal.directory())]
    assert asyncio.run(read_back()) == [
        ("stdout", b"hello journal\n"), ("stdout", b"first piece "),
        ("stdout", b"last piece\n"), ("stderr", b"to stderr\n"), ("stdout", big + b"\n")]

    async def tail() -> list[bytes]:
        return [e.data async for e in read_journal(i.id, tail=1,
                                                   directory=journal.directory())]
    assert asyncio.run(tail()) == [big + b"\n"]


@pytest.mark.parametrize("compression", ["gzip", "zlib", "none"])
def test_gelf_udp_with_chunking(compression: str) -> None:
    rx = GelfUdp()
    i = info({"gelf-address": f"udp://127.0.0.1:{rx.port}", "gelf-compression-type": compression,
              "labels": "com.example.l", "env": "SECRET", "tag": "{{.Name}}"})
    d = remote.open_remote("gelf", i)
    big = os.urandom(60_000).hex().encode()       # does not compress: many chunks
    try:
        d.log(msg(b"hello gelf"))
        d.log(msg(b"oops", "stderr"))
        d.log(msg(big))
        got = [rx.receive() for _ in range(3)]
    finally:
        d.close()
        rx.close()
    (m1, n1), (m2, _), (m3, n3) = got
    assert n1 == 1 and n3 > 40
    assert m1 == {"version": "1.1", "host": HOST, "short_message": "hello gelf",
                  "timestamp": m1["timestamp"], "level": 6, "_container_id": i.id,
                  "_container_name": i.value("Name"), "_image_id": i.image_id,
                  "_image_name": "busybox:latest", "_command": "sh -c echo",
                  "_tag": i.value("Name"), "_created": "2024-05-01T10:00:00.5Z",
                  "_com.example.l": "lv", "_SECRET": "s3"}
    assert abs(m1["timestamp"] - time.time()) < 60
    assert m2["level"] == 3 and m3["short_message"] == big.decode()


def test_gelf_tcp() -> None:
    rx = GelfTcp()
    d = remote.open_remote("gelf", info({"gelf-address": f"tcp://127.0.0.1:{rx.port}"}))
    try:
        d.log(msg(b"over tcp"))
        d.log(msg(b"x" * 50_000))
        wait_until(lambda: len(rx.messages) == 2, what="gelf tcp messages")
    finally:
        d.close()
        rx.close()
    assert rx.messages[0]["short_message"] == "over tcp"
    assert rx.messages[1]["short_message"] == "x" * 50_000


@pytest.mark.parametrize("where", ["tcp", "unix"])
def test_fluentd_forward(tmp_path: Path, where: str) -> None:
    path = str(tmp_path / "fluent.sock")
    rx = Fluentd(path if where == "unix" else None)
    address = f"unix://{path}" if where == "unix" else f"tcp://127.0.0.1:{rx.port}"
    i = info({"fluentd-address": address, "fluentd-sub-second-precision": "true",
              "fluentd-request-ack": "true", "labels": "com.example.l"})
    d = remote.open_remote("fluentd", i)
    try:
        d.log(msg(b"hello fluent"))
        d.log(msg(b"piece", "stderr", partial=True))
        d.log(msg(b"end", "stderr"))
        wait_until(lambda: len(rx.messages) == 3, what="fluentd messages")
    finally:
        d.close()
        rx.close()
    tag, (ext, raw), record, option = rx.messages[0]
    assert tag == i.id[:12] and ext == 0 and len(raw) == 8 and set(option) == {"chunk"}
    assert abs(int.from_bytes(raw[:4], "big") - time.time()) < 60
    assert record == {"container_id": i.id, "container_name": "/" + i.value("Name"),
                      "source": "stdout", "log": "hello fluent", "com.example.l": "lv"}
    p1, p2 = rx.messages[1][2], rx.messages[2][2]
    assert (p1["partial_message"], p1["partial_last"], p2["partial_last"]) == ("true", "false",
                                                                             "true")
    assert p1["partial_id"] == p2["partial_id"] and p2["log"] == "end"


def test_fluentd_sync_refuses_start_async_waits_for_fluentd() -> None:
    port = free_port()
    with pytest.raises(ValueError, match=f"dial tcp 127.0.0.1:{port}: connect: connection refused"):
        remote.open_remote("fluentd", info({"fluentd-address": f"127.0.0.1:{port}"}))
    d = remote.open_remote("fluentd", info({"fluentd-address": f"127.0.0.1:{port}",
                                            "fluentd-async": "true",
                                            "fluentd-retry-wait": "100ms"}))
    try:
        t0 = time.monotonic()
        d.log(msg(b"queued while fluentd is down"))
        assert time.monotonic() - t0 < 0.5
        rx = Fluentd(port=port)
        try:
            wait_until(lambda: rx.messages, 20, what="the queued message")
            assert rx.messages[0][2]["log"] == "queued while fluentd is down"
        finally:
            rx.close()
    finally:
        d.close()


def test_blocking_mode_waits_on_a_stalled_endpoint_and_close_interrupts() -> None:
    stalled = StreamServer()                   # accepts, never reads
    d = remote.open_remote("syslog", info({"syslog-address": f"tcp://127.0.0.1:{stalled.port}"}))
    state: dict[str, object] = {"sent": 0}

    def writer() -> None:
        try:
            for _ in range(100_000):
                d.log(msg(b"y" * 1000))
                state["sent"] = int(str(state["sent"])) + 1
        except DriverClosed:
            state["closed"] = True
    t = threading.Thread(target=writer, daemon=True)
    try:
        t.start()
        wait_until(lambda: int(str(state["sent"])) > 100, what="first sends")
        snapshot = -1

        def stuck() -> bool:
            nonlocal snapshot
            n = int(str(state["sent"]))
            same, snapshot = n == snapshot, n
            return same
        wait_until(stuck, 20, interval=0.3, what="the writer blocked")
        assert t.is_alive() and int(str(state["sent"])) < 100_000
        t0 = time.monotonic()
        d.close()
        t.join(5)
        assert not t.is_alive() and state.get("closed") and time.monotonic() - t0 < 5
    finally:
        d.close()
        stalled.close()


def test_non_blocking_mode_never_waits_and_drops_past_the_buffer() -> None:
    stalled = StreamServer()
    d = remote.open_remote("syslog", info({"syslog-address": f"tcp://127.0.0.1:{stalled.port}",
                                           "mode": "non-blocking",
                                           "max-buffer-size": "64k"}))
    try:
        t0 = time.monotonic()
        for _ in range(20_000):
            d.log(msg(b"z" * 1000))               # 20 MB against a peer that never reads
        assert time.monotonic() - t0 < 10
        assert getattr(d, "dropped") > 10_000
    finally:
        t0 = time.monotonic()
        d.close()                                 # returns at once; the sender gives up later
        assert time.monotonic() - t0 < 1
        stalled.close()
