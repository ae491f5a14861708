"""The Docker SDK for Python against pydockerd."""
from __future__ import annotations

import time

import docker
import pytest
from polling import wait_until


def test_sdk_run_and_logs(sdk):
    out = sdk.containers.run("busybox", ["sh", "-c", "echo sdk; echo err >&2"], remove=True,
                             stderr=True)
    assert b"sdk" in out
    c = sdk.containers.run("busybox", ["sh", "-c", "echo one; sleep 0.3; echo two"],
                           detach=True)
    assert c.wait(timeout=20)["StatusCode"] == 0
    assert c.logs() == b"one\ntwo\n"
    assert c.logs(stdout=False) == b""
    c.remove()


def test_sdk_exec_run_and_attrs(sdk):
    c = sdk.containers.run("busybox", "sleep 300", detach=True, name="sdkexec",
                           labels={"k": "v"})
    try:
        code, out = c.exec_run(["sh", "-c", "echo hi; exit 3"])
        assert code == 3 and out == b"hi\n"
        code, (o, e) = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
        assert o == b"o\n" and e == b"e\n"
        c.reload()
        assert c.status == "running" and c.labels == {"k": "v"}
        assert c.attrs["State"]["Pid"] > 0
        assert [x.name for x in sdk.containers.list(filters={"label": "k=v"})] == ["sdkexec"]
        stats = c.stats(stream=False)
        assert stats["memory_stats"]["usage"] > 0
        assert stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    finally:
        c.remove(force=True)


def test_sdk_attach_socket_stdin(sdk):
    c = sdk.containers.create("busybox", "cat", stdin_open=True)
    sock = c.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
    c.start()
    raw = sock._sock
    raw.sendall(b"ping\n")
    raw.settimeout(5)
    data = b""
    deadline = time.time() + 5
    while b"ping" not in data and time.time() < deadline:
        data += raw.recv(4096)
    assert b"ping\n" in data
    raw.close()
    c.remove(force=True)


def test_sdk_errors(sdk):
    with pytest.raises(docker.errors.ImageNotFound):
        sdk.containers.create("nope:nope")
    with pytest.raises(docker.errors.APIError) as ei:
        # the SDK then pulls: from a closed loopback port, never from Docker Hub
        sdk.containers.run("127.0.0.1:1/nope:nope")
    assert ei.value.status_code in (404, 500)
    with pytest.raises(docker.errors.NotFound):
        sdk.containers.get("doesnotexist")
    with pytest.raises(docker.errors.APIError) as ei:
        sdk.containers.create("busybox", name="bad/name")
    assert ei.value.status_code == 400


def test_sdk_healthcheck(sdk):
    c = sdk.containers.run("busybox", "sleep 300", detach=True, healthcheck={
        "test": ["CMD-SHELL", "test -f /tmp/ok"], "interval": 200_000_000,
        "timeout": 2_000_000_000, "retries": 2})
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            c.reload()
            if c.attrs["State"]["Health"]["Status"] == "unhealthy":
                break
            time.sleep(0.2)
        assert c.attrs["State"]["Health"]["Status"] == "unhealthy"
        c.exec_run(["touch", "/tmp/ok"])
        deadline = time.time() + 10
        while time.time() < deadline:
            c.reload()
            if c.attrs["State"]["Health"]["Status"] == "healthy":
                break
            time.sleep(0.2)
        h = c.attrs["State"]["Health"]
        assert h["Status"] == "healthy" and h["FailingStreak"] == 0
        assert h["Log"][-1]["ExitCode"] == 0
    finally:
        c.remove(force=True)


def test_sdk_hijack_keeps_output_sent_with_the_head(sdk, monkeypatch):
    """The SDK reads a hijacked stream from the socket under http.client's buffer:
    output that came in the same read as the response head would be lost. The
    daemon holds the first output until the head was read (api/heldwriter.py):
    a client that parses the head 20 ms late still gets all of it."""
    import http.client

    begin = http.client.HTTPResponse.begin

    def slow_begin(self):
        time.sleep(0.02)   # enough to lose the output without the hold; far under HOLD_S
        return begin(self)

    c = sdk.containers.run("busybox", ["sh", "-c", "echo logged; sleep 300"], detach=True)
    try:
        wait_until(lambda: c.logs() == b"logged\n", timeout=20)
        monkeypatch.setattr(http.client.HTTPResponse, "begin", slow_begin)
        for _ in range(3):
            assert c.exec_run("echo out", tty=True) == (0, b"out\r\n")
            eid = sdk.api.exec_create(c.id, ["sh", "-c", "echo o; echo e >&2"])["Id"]
            assert sdk.api.exec_start(eid, demux=True) == (b"o\n", b"e\n")
            assert sdk.api.attach(c.id, stream=False, logs=True) == b"logged\n"
    finally:
        monkeypatch.undo()
        c.remove(force=True)
