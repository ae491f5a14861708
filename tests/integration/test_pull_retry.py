"""Pull resilience as dockerd's: retries with back-off (`max-download-attempts`),
a reset download resumed with a Range request, a stalled registry failing after
the inactivity timeout, and the daemon-wide `max-concurrent-downloads` limit
(also after a SIGHUP reload), all observed at a fault proxy in front of Debian's
docker-registry on 127.0.0.1."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import DOCKER, cleanup_daemon, make_daemon
from polling import wait_until
from registry_helpers import (FaultProxy, SilentServer, seed_random_image, start_registry,
                              tree_snapshot)

STALL_TIMEOUT = 2          # PYDOCKERD_REGISTRY_TIMEOUT for this module's daemon
SETTINGS = {"max-download-attempts": 2, "max-concurrent-downloads": 2}


@pytest.fixture(scope="module")
def env():
    """A registry and a daemon configured through daemon.json (so SIGHUP can change
    it): 2 download attempts (one back-off of 5 s), 2 concurrent downloads."""
    base = Path(tempfile.mkdtemp(prefix="pdretry-", dir="/tmp"))
    reg = None
    d = None
    try:
        reg = start_registry(base, "plain")
        d = make_daemon(base / "daemon")
        d.base.mkdir(parents=True, exist_ok=True)
        (d.base / "daemon.json").write_text(json.dumps(SETTINGS))
        old = os.environ.get("PYDOCKERD_REGISTRY_TIMEOUT")
        os.environ["PYDOCKERD_REGISTRY_TIMEOUT"] = str(STALL_TIMEOUT)
        try:
            d.start()
        finally:
            if old is None:
                os.environ.pop("PYDOCKERD_REGISTRY_TIMEOUT", None)
            else:
                os.environ["PYDOCKERD_REGISTRY_TIMEOUT"] = old
        yield dict(d=d, reg=reg, base=base)
    finally:
        if d is not None:
            cleanup_daemon(d)
        if reg is not None:
            reg.stop()
        if os.environ.get("KEEP_TEST_DIRS") != "1":
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture()
def proxy(env):
    p = FaultProxy(env["reg"].url)
    try:
        yield p
    finally:
        p.close()


def lines(out: str) -> str:
    return out.replace("\r", "\n")


def assert_nothing_left(d, before: set[str], ref: str) -> None:
    assert d.cli("image", "inspect", ref, check=False).returncode != 0
    after = {p for p in tree_snapshot(d.data_root) - before if not p.endswith("/l")}
    assert not after, after


def test_reset_mid_blob_is_resumed_with_a_range_request(env, proxy):
    d = env["d"]
    seeded = seed_random_image(env["reg"].url, "x/resume", "1", [2 << 20])
    layer = seeded["layers"]
    proxy.mode, proxy.spoil, proxy.times = "reset-mid", {layer}, 1
    ref = f"{proxy.host}/x/resume:1"
    try:
        out = lines(d.out("pull", ref, timeout=60))
        assert f"{layer[7:19]}: Retrying in 5 seconds" in out, out
        assert f"Status: Downloaded newer image for {ref}" in out, out
        assert d.inspect(ref)["Id"] == seeded["config"]
        gets = proxy.blob_gets(layer)
        assert len(gets) == 2 and gets[0] == "", gets
        # the second attempt asked only for what the first did not get (the proxy
        # sent half the blob before the reset)
        offset = int(gets[1].removeprefix("bytes=").removesuffix("-"))
        assert 0 < offset <= int(seeded["sizes"]) // 2, (gets, seeded["sizes"])
    finally:
        d.cli("rmi", ref, check=False)


def test_registry_without_range_support_restarts_the_blob_and_its_unpack(env, proxy):
    # the layer is unpacked while it downloads (distribution/follow.py): when the
    # resumed attempt gets the whole blob again (200, not 206), the unpack of the
    # first half is void and the layer is unpacked again from the finished file
    d = env["d"]
    seeded = seed_random_image(env["reg"].url, "x/norange", "1", [6 << 20])
    layer = seeded["layers"]
    proxy.mode, proxy.spoil, proxy.times, proxy.ignore_range = "reset-mid", {layer}, 1, True
    ref = f"{proxy.host}/x/norange:1"
    before = tree_snapshot(d.data_root)
    try:
        out = lines(d.out("pull", ref, timeout=60))
        assert f"{layer[7:19]}: Retrying in 5 seconds" in out, out
        assert f"Status: Downloaded newer image for {ref}" in out, out
        assert d.inspect(ref)["Id"] == seeded["config"]
        gets = proxy.blob_gets(layer)
        assert len(gets) == 2 and gets[0] == "" and gets[1].startswith("bytes="), gets
    finally:
        d.cli("rmi", ref, check=False)
    assert_nothing_left(d, before, ref)


def test_client_gone_mid_pull_stops_the_unpacks_and_leaves_nothing(env, proxy):
    # one layer done (unpacked and registered), the other half downloaded and
    # being unpacked as it arrives, then stalled: the CLI goes away; the pull stops,
    # waits for its unpack threads, and drops the layer it made
    d = env["d"]
    seeded = seed_random_image(env["reg"].url, "x/gone", "1", [64 << 10, 8 << 20])
    small, big = seeded["layers"].split(",")
    proxy.mode, proxy.spoil = "stall", {big}
    ref = f"{proxy.host}/x/gone:1"
    before = tree_snapshot(d.data_root)
    env_cli = dict(os.environ, DOCKER_HOST=d.host, DOCKER_CONFIG=str(d.base / "cli"))
    cli = subprocess.Popen([DOCKER, "pull", ref], env=env_cli, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: proxy.blob_gets(big) and any(
            p.startswith("layers/") and not p.startswith("layers/tmp-") and p != "layers/l"
            for p in tree_snapshot(d.data_root) - before), timeout=STALL_TIMEOUT,
            what="the small layer unpacked while the big one stalls")
    finally:
        cli.kill()
        cli.wait()
    wait_until(lambda: not {p for p in tree_snapshot(d.data_root) - before
                            if not p.endswith("/l")}, timeout=30,
               what="the pull's layers and files gone")
    assert d.cli("image", "inspect", ref, check=False).returncode != 0


def test_registry_that_always_fails_gives_up_after_max_attempts(env, proxy):
    d = env["d"]
    seeded = seed_random_image(env["reg"].url, "x/broken", "1", [64 << 10])
    layer = seeded["layers"]
    proxy.mode, proxy.spoil = "500", {layer}
    ref = f"{proxy.host}/x/broken:1"
    before = tree_snapshot(d.data_root)
    t0 = time.monotonic()
    r = d.cli("pull", ref, check=False, timeout=60)
    elapsed = time.monotonic() - t0
    assert r.returncode != 0, r.stdout_text
    assert "received unexpected HTTP status: 500 Internal Server Error" in r.stderr_text, \
        r.stderr_text
    out = lines(r.stdout_text)
    assert "Retrying in 5 seconds" in out and "Retrying in 1 second\n" in out, out
    assert len(proxy.blob_gets(layer)) == SETTINGS["max-download-attempts"]
    assert 5 <= elapsed < 20, elapsed
    assert_nothing_left(d, before, ref)


def test_blob_that_stalls_fails_after_the_inactivity_timeout(env, proxy):
    d = env["d"]
    seeded = seed_random_image(env["reg"].url, "x/stall", "1", [256 << 10])
    layer = seeded["layers"]
    proxy.mode, proxy.spoil = "stall", {layer}
    ref = f"{proxy.host}/x/stall:1"
    before = tree_snapshot(d.data_root)
    t0 = time.monotonic()
    r = d.cli("pull", ref, check=False, timeout=60)
    elapsed = time.monotonic() - t0
    assert r.returncode != 0, r.stdout_text
    assert "i/o timeout" in r.stderr_text, r.stderr_text
    gets = proxy.blob_gets(layer)
    # two attempts: the second resumes where the stalled one stopped
    assert len(gets) == 2 and gets[0] == "" and gets[1].startswith("bytes="), gets
    assert 2 * STALL_TIMEOUT + 5 <= elapsed < 20, elapsed
    assert_nothing_left(d, before, ref)


def test_registry_that_accepts_and_says_nothing_fails_the_pull(env):
    d = env["d"]
    silent = SilentServer()
    try:
        t0 = time.monotonic()
        r = d.cli("pull", f"{silent.host}/x/y:1", check=False, timeout=60)
        elapsed = time.monotonic() - t0
        assert r.returncode != 0
        assert "timeout awaiting response headers" in r.stderr_text, r.stderr_text
        assert elapsed < 4 * STALL_TIMEOUT + 5, elapsed
    finally:
        silent.close()


def _pull_all(d, refs: list[str]) -> None:
    errors: list[str] = []

    def one(ref: str) -> None:
        r = d.cli("pull", ref, check=False, timeout=60)
        if r.returncode:
            errors.append(r.stderr_text)
    threads = [threading.Thread(target=one, args=(ref,)) for ref in refs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_concurrent_downloads_are_limited_daemon_wide_and_reloadable(env, proxy):
    d = env["d"]
    refs = []
    for name in ("c1", "c2"):
        seed_random_image(env["reg"].url, f"x/{name}", "1", [32 << 10] * 4)
        refs.append(f"{proxy.host}/x/{name}:1")
    proxy.delay = 0.4                    # each blob GET takes a while: downloads overlap
    try:
        _pull_all(d, refs)               # two pulls, eight blobs, one daemon-wide limit
        assert proxy.max_in_flight == 2, proxy.max_in_flight
        for ref in refs:
            d.cli("rmi", ref)
        proxy.max_in_flight = 0
        (d.base / "daemon.json").write_text(json.dumps({**SETTINGS,
                                                        "max-concurrent-downloads": 1}))
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "max_concurrent_downloads=1" in d.log_path.read_text(),
                   what="the reload")
        _pull_all(d, refs[:1])
        assert proxy.max_in_flight == 1, proxy.max_in_flight
    finally:
        for ref in refs:
            d.cli("rmi", ref, check=False)
        (d.base / "daemon.json").write_text(json.dumps(SETTINGS))
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "max_concurrent_downloads=2" in d.log_path.read_text(),
                   what="the reload back")


def test_same_image_pulled_twice_at_once_downloads_each_layer_once(env, proxy):
    # distribution/flights.py: the second pull waits for the layers the first makes
    # (as dockerd's transfer manager lets a second pull watch the first's download)
    d = env["d"]
    seeded = seed_random_image(env["reg"].url, "x/twice", "1", [256 << 10] * 2)
    ref = f"{proxy.host}/x/twice:1"
    proxy.delay = 0.5                    # each blob GET takes a while: the pulls overlap
    before = tree_snapshot(d.data_root)
    try:
        outs: list[str] = []

        def one() -> None:
            outs.append(lines(d.out("pull", ref, timeout=60)))
        threads = [threading.Thread(target=one) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(outs) == 2
        for layer in seeded["layers"].split(","):
            assert len(proxy.blob_gets(layer)) == 1, proxy.blob_gets(layer)
            for out in outs:                 # both show the one download's progress
                assert f"{layer[7:19]}: Download complete" in out, out
                assert f"{layer[7:19]}: Pull complete" in out, out
        assert d.inspect(ref)["Id"] == seeded["config"]
    finally:
        d.cli("rmi", ref, check=False)
    assert_nothing_left(d, before, ref)
