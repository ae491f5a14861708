"""A full data-root disk, for real: a private daemon on a small tmpfs that fills up.

Requests that need space fail with a clear "no space left on device"; reads and
removals (rm -f, rmi, volume rm, prune) still work; the daemon restarts on the
full disk and tells the truth; nothing acknowledged is lost or comes back; once
space is freed everything works again.
"""
from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import docker
import pytest

from conftest import Daemon, cleanup_daemon, make_daemon
from freezer import thaw

SIZE_MIB = 64
NO_SPACE = "no space left on device"


@pytest.fixture
def small_disk_daemon(images_dir):
    """A daemon whose data root is a tmpfs of SIZE_MIB, unmounted whatever happens."""
    tmp = Path(tempfile.mkdtemp(prefix="pdt-df-", dir="/tmp"))
    d = make_daemon(tmp)
    os.makedirs(d.data_root)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MIB}m,mode=711",
                    "pdt-diskfull", d.data_root], check=True)
    try:
        d.start()
        d.cli("load", "-i", str(images_dir / "busybox.tar"))
        d.cli("load", "-i", str(images_dir / "layered.tar"))
        yield d
    finally:
        try:
            cleanup_daemon(d)        # removes containers, stops, unmounts under data_root
        finally:
            while subprocess.run(["umount", "-l", d.data_root],
                                 capture_output=True).returncode == 0:
                pass                 # cleanup_daemon may already have unmounted it
            shutil.rmtree(tmp, ignore_errors=True)


def _fill(path: str) -> None:
    """Append to `path` until the filesystem is full, down to the last page."""
    with open(path, "ab", buffering=0) as f:
        for size in (1 << 20, 4096):
            chunk = b"\0" * size
            while True:
                try:
                    f.write(chunk)
                except OSError as e:
                    assert e.errno == errno.ENOSPC
                    break


def _free(d: Daemon) -> int:
    st = os.statvfs(d.data_root)
    return st.f_bavail * st.f_frsize


def _names(d: Daemon) -> set[str]:
    return set(d.out("ps", "-a", "--format", "{{.Names}}").split())


def _volumes(d: Daemon) -> set[str]:
    return set(d.out("volume", "ls", "-q").split())


def _state(d: Daemon, ref: str) -> str:
    return d.out("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", ref).strip()


def _fails_for_space(d: Daemon, *args: str) -> None:
    r = d.cli(*args, check=False)
    assert r.returncode != 0, f"docker {' '.join(args)} succeeded on a full disk"
    assert NO_SPACE in r.stderr_text, r.stderr_text


def test_full_disk(small_disk_daemon: Daemon) -> None:
    d = small_disk_daemon
    hostfill = os.path.join(d.data_root, "hostfill")
    d.cli("volume", "create", "keepvol")
    d.cli("tag", "busybox", "extra:1")
    d.cli("run", "-d", "--stop-timeout", "1", "--name", "keep", "busybox", "sleep", "300")
    d.cli("create", "--name", "made", "busybox", "true")
    d.cli("run", "--name", "anon", "-v", "/data", "busybox", "true")
    anon_vol = d.inspect("anon")["Mounts"][0]["Name"]
    assert d.cli("run", "--name", "done5", "--label", "prunable=1", "busybox", "sh", "-c",
                 "exit 5", check=False).returncode == 5

    # a container fills the disk from its rw layer: the attached run returns its real code
    r = d.cli("run", "--name", "filler", "busybox", "sh", "-c",
              "dd if=/dev/zero of=/fill bs=1M; exit 3", check=False, timeout=60)
    assert r.returncode == 3, r.stderr_text
    assert NO_SPACE in r.stderr_text.lower()
    assert _state(d, "filler") == "exited 3"
    _fill(hostfill)
    assert _free(d) < 64 * 1024

    # what needs space fails clearly (a 5xx with the message), and leaves nothing
    _fails_for_space(d, "volume", "create", "nospace")
    _fails_for_space(d, "create", "--name", "nope", "busybox")
    _fails_for_space(d, "network", "create", "nonet")
    _fails_for_space(d, "tag", "busybox", "busybox:nospace")
    _fails_for_space(d, "commit", "keep", "committed:nospace")
    assert "nospace" not in d.out("images", "--format", "{{.Tag}}")
    assert "nonet" not in d.out("network", "ls", "--format", "{{.Name}}").split()
    sdk = docker.DockerClient(base_url=d.host, timeout=30)
    try:
        with pytest.raises(docker.errors.APIError) as info:
            sdk.volumes.create("nospace2")
        assert info.value.status_code == 500 and NO_SPACE in str(info.value.explanation)
    finally:
        sdk.close()
    assert "nospace" not in _volumes(d) and "nospace2" not in _volumes(d)
    assert "nope" not in _names(d)

    # reads work; every kind of removal works, on the full disk
    assert d.out("images", "-q") and d.inspect("keep")["State"]["Running"]
    d.cli("rm", "-f", "made")
    d.cli("container", "prune", "-f", "--filter", "label=prunable")
    d.cli("rm", "anon")
    d.cli("volume", "prune", "-f")
    d.cli("volume", "rm", "keepvol")
    d.cli("rmi", "extra:1")
    d.cli("rmi", "layered:latest")
    d.cli("image", "prune", "-f")
    assert _names(d) == {"keep", "filler"} and _volumes(d) == set()
    assert anon_vol not in _volumes(d)

    # the daemon stops and starts on the full disk, records the exit of what it
    # stopped, and nothing removed comes back
    _fill(hostfill)
    d.restart(signal.SIGTERM)
    assert _names(d) == {"keep", "filler"}
    assert _state(d, "filler") == "exited 3"
    assert _state(d, "keep").split()[0] == "exited"
    assert _volumes(d) == set()
    tags = d.out("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert tags == ["busybox:latest"]
    _fails_for_space(d, "volume", "create", "nospace")

    # worst case: the space the store keeps in reserve is spent too; the daemon still
    # starts and tells the truth, and removing what filled the disk works
    d.cli("start", "keep")
    os.unlink(os.path.join(d.data_root, "pydockerd.db.reserve"))
    _fill(hostfill)
    d.restart(signal.SIGKILL)
    assert _names(d) == {"keep", "filler"}
    assert _state(d, "filler") == "exited 3"
    assert _state(d, "keep").split()[0] == "exited"
    d.cli("rm", "-f", "filler")
    d.cli("rm", "-f", "keep")
    assert _names(d) == set()

    # with space back everything works again, and the reserve is made again
    os.unlink(hostfill)
    d.cli("volume", "create", "after")
    assert d.out("run", "--rm", "-v", "after:/v", "busybox", "sh", "-c",
                 "head -c 1048576 /dev/zero > /v/f && echo ok") == "ok\n"
    assert os.path.getsize(os.path.join(d.data_root, "pydockerd.db.reserve")) == 8 << 20
    d.restart(signal.SIGTERM)
    assert _names(d) == set() and _volumes(d) == {"after"}
    d.cli("volume", "rm", "after")
    points = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    # only the tmpfs itself, and the containers directory's private bind mount
    assert sorted(p for p in points if p.startswith(d.data_root)) == [
        d.data_root, os.path.join(d.data_root, "containers")]


def _cgroup_file(cid: str, name: str) -> Path | None:
    """A v1 cgroup file of the container (None on a v2 host)."""
    import glob
    found = glob.glob(f"/sys/fs/cgroup/cpu/**/*{cid}*/{name}", recursive=True)
    return Path(found[0]) if found else None


@pytest.mark.timeout(240)
def test_pause_unpause_and_update_on_a_full_disk(small_disk_daemon: Daemon) -> None:
    """With the store's reserve spent too: pause and unpause happen in the runtime
    first, so their record follows even when it cannot be written (as dockerd: it
    logs a failed checkpoint), and stop still works; an update is recorded first,
    so one that cannot be recorded leaves the running container as it was."""
    d = small_disk_daemon
    hostfill = os.path.join(d.data_root, "hostfill")
    cid = d.out("run", "-d", "--stop-timeout", "1", "--name", "keep", "busybox",
                "sleep", "300").strip()
    try:
        shares = _cgroup_file(cid, "cpu.shares")
        before = shares.read_text() if shares else None
        os.unlink(os.path.join(d.data_root, "pydockerd.db.reserve"))
        _fill(hostfill)
        d.cli("pause", "keep")
        assert _state(d, "keep") == "paused 0"
        assert d.out("info", "--format", "{{.ContainersPaused}}").strip() == "1"
        d.cli("unpause", "keep")
        assert _state(d, "keep") == "running 0"
        _fails_for_space(d, "update", "--cpu-shares", "512", "keep")
        assert d.inspect("keep")["HostConfig"]["CpuShares"] == 0
        if shares is not None:
            assert shares.read_text() == before
        d.cli("pause", "keep")
        d.cli("stop", "keep", timeout=30)     # it used to hang: recorded running, frozen
        assert _state(d, "keep") == "exited 137"
        assert d.out("info", "--format", "{{.ContainersRunning}} {{.ContainersPaused}}"
                     ).strip() == "0 0"
    finally:
        thaw(cid)
        if os.path.exists(hostfill):
            os.unlink(hostfill)
