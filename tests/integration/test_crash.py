"""A daemon killed (SIGKILL) in the middle of concurrent creates, starts and removals
comes back consistent: every acknowledged container is there and usable, every
acknowledged removal stays removed, and nothing leaks (mounts, conmon, runc)."""
from __future__ import annotations

import os
import signal
import threading
import time

import docker
import docker.errors
import pytest

WORKERS = 4


def _processes_under(*roots: str) -> list[str]:
    """Command lines of live processes that name one of the roots (conmon, runc)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(r in cmd for r in roots):
            found.append(f"{pid}: {cmd}")
    return found


def _mounts_under(root: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if f" {root}/" in line]


class Burst:
    """Workers that create+start and remove containers until the daemon dies."""

    def __init__(self, host: str, victims: list[str]) -> None:
        self.host = host
        self.victims = victims
        self.created: set[str] = set()
        self.removed: set[str] = set()
        self.in_flight_removal = ""      # may or may not have happened
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._create_start, args=(n,), daemon=True)
                        for n in range(WORKERS)]
        self.threads.append(threading.Thread(target=self._remove, daemon=True))

    def _client(self) -> docker.APIClient:
        return docker.APIClient(base_url=self.host, timeout=20)

    def _create_start(self, n: int) -> None:
        api = self._client()
        for i in range(1000):
            try:
                cid = api.create_container("busybox", ["sleep", "300"], name=f"w{n}-{i}")["Id"]
                with self.lock:
                    self.created.add(cid)
                api.start(cid)
            except Exception:  # noqa: BLE001 - the daemon was killed
                return

    def _remove(self) -> None:
        api = self._client()
        for v in self.victims:
            self.in_flight_removal = v
            try:
                api.remove_container(v, force=True)
            except Exception:  # noqa: BLE001
                return
            with self.lock:
                self.removed.add(v)

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(30)
            assert not t.is_alive(), "a client hung after the daemon was killed"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("round_", [1, 2])
def test_sigkill_during_concurrent_creates_starts_and_removals(fresh_daemon, round_):
    d = fresh_daemon()
    api = docker.APIClient(base_url=d.host, timeout=30)
    victims = [api.create_container("busybox", ["sleep", "300"], name=f"victim{i}")["Id"]
               for i in range(12)]
    for v in victims[::2]:
        api.start(v)
    burst = Burst(d.host, victims)
    burst.start()
    # kill while work is in flight: after a few acknowledged creates (more each round)
    deadline = time.monotonic() + 60
    while len(burst.created) < 3 * round_ + 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert burst.created, "no container was created before the deadline"
    d.stop(signal.SIGKILL)
    burst.join()
    d.start()

    api = docker.APIClient(base_url=d.host, timeout=30)
    present = {c["Id"] for c in api.containers(all=True)}
    expected = burst.created | set(victims) - burst.removed - {burst.in_flight_removal}
    missing = expected - present
    assert not missing, f"acknowledged containers lost: {missing}"
    resurrected = burst.removed & present
    assert not resurrected, f"acknowledged removals came back: {resurrected}"

    # every container that is there can be started and is then really running
    for cid in present:
        if not api.inspect_container(cid)["State"]["Running"]:
            api.start(cid)
        assert api.inspect_container(cid)["State"]["Running"], cid
    assert api.exec_start(api.exec_create(next(iter(present)), ["echo", "ok"])) == b"ok\n"
    for cid in present:
        api.remove_container(cid, force=True)
    assert api.containers(all=True) == []

    # nothing leaked: no container mount, no conmon or runc process of this daemon
    def leaks() -> list[str]:
        procs = [p for p in _processes_under(d.exec_root)
                 if int(p.split(":", 1)[0]) != d.proc.pid]
        return _mounts_under(os.path.join(d.data_root, "containers")) + procs
    deadline = time.monotonic() + 10
    while leaks() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leaks() == []
