"""Docker's security defaults and resource limits, seen from inside the container."""
from __future__ import annotations

import pytest

DEFAULT_CAPS = "00000000a80425fb"


def _status(daemon, *args: str) -> dict[str, str]:
    out = daemon.out("run", "--rm", *args, "busybox", "cat", "/proc/self/status")
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def test_default_caps_seccomp_and_nnp(daemon):
    st = _status(daemon)
    assert st["CapEff"] == DEFAULT_CAPS
    assert st["CapBnd"] == DEFAULT_CAPS
    assert st["Seccomp"] == "2"
    assert st["NoNewPrivs"] == "0"
    st = _status(daemon, "--security-opt", "no-new-privileges")
    assert st["NoNewPrivs"] == "1"
    st = _status(daemon, "--security-opt", "seccomp=unconfined")
    assert st["Seccomp"] == "0"
    st = _status(daemon, "--cap-drop", "ALL")
    assert st["CapEff"] == "0000000000000000"
    st = _status(daemon, "--cap-add", "SYS_ADMIN")
    assert int(st["CapEff"], 16) & (1 << 21)


def test_no_mount_permission_and_masked_paths(daemon):
    r = daemon.cli("run", "--rm", "busybox", "mount", "-t", "tmpfs", "x", "/tmp", check=False)
    assert r.returncode != 0 and "denied" in r.stderr_text.lower() or \
        "not permitted" in r.stderr_text
    out = daemon.out("run", "--rm", "busybox", "sh", "-c",
                     "cat /proc/timer_list | wc -c; touch /proc/sys/kernel/x 2>&1 || echo ro")
    assert out.split()[0] == "0" and "ro" in out


def test_own_namespaces(daemon):
    out = daemon.out("run", "--rm", "busybox", "sh", "-c", "echo $$; ps -o pid | wc -l")
    assert out.split()[0] == "1"
    import os
    host_net = os.readlink("/proc/self/ns/net")
    out = daemon.out("run", "--rm", "busybox", "readlink", "/proc/self/ns/net").strip()
    assert out != host_net


def test_privileged_starts_or_says_why(daemon):
    r = daemon.cli("run", "--rm", "--privileged", "busybox", "sh", "-c",
                   "mount -t tmpfs x /tmp && echo mounted", check=False)
    if r.returncode == 0:
        assert "mounted" in r.stdout_text
    else:
        assert "Error response from daemon" in r.stderr_text and r.stderr_text.strip()


def test_readonly_rootfs_and_tmpfs(daemon):
    r = daemon.cli("run", "--rm", "--read-only", "busybox", "touch", "/x", check=False)
    assert r.returncode != 0 and "Read-only file system" in r.stderr_text
    out = daemon.out("run", "--rm", "--read-only", "--tmpfs", "/scratch", "busybox", "sh",
                     "-c", "touch /scratch/ok && grep /scratch /proc/mounts")
    assert "tmpfs" in out and "noexec" in out


def test_bind_mounts(daemon, tmp_path):
    (tmp_path / "in.txt").write_text("hostdata\n")
    out = daemon.out("run", "--rm", "-v", f"{tmp_path}:/host", "busybox", "sh", "-c",
                     "cat /host/in.txt; echo back > /host/out.txt")
    assert out == "hostdata\n"
    assert (tmp_path / "out.txt").read_text() == "back\n"
    r = daemon.cli("run", "--rm", "-v", f"{tmp_path}:/host:ro", "busybox", "touch",
                   "/host/x", check=False)
    assert r.returncode != 0
    doc_out = daemon.out("run", "-d", "--name", "bindi", "-v", f"{tmp_path}:/host:ro",
                         "busybox", "true").strip()
    try:
        m = daemon.inspect("bindi")["Mounts"][0]
        assert m["Source"] == str(tmp_path) and m["Destination"] == "/host" and not m["RW"]
    finally:
        daemon.cli("rm", "-f", doc_out)


def _cgroup(daemon, cid: str, controller: str, name: str) -> str:
    with open(f"/sys/fs/cgroup/{controller}/pydockerd/{cid}/{name}") as f:
        return f.read().strip()


def test_resource_limits_in_cgroup(daemon):
    import os
    if not os.path.isdir("/sys/fs/cgroup/memory"):
        pytest.skip("cgroup v1 layout expected")
    cid = daemon.out("run", "-d", "-m", "64m", "--cpus", "0.5", "--pids-limit", "50",
                     "--cpu-shares", "512", "busybox", "sleep", "60").strip()
    try:
        assert _cgroup(daemon, cid, "memory", "memory.limit_in_bytes") == str(64 << 20)
        assert _cgroup(daemon, cid, "cpu", "cpu.cfs_quota_us") == "50000"
        assert _cgroup(daemon, cid, "cpu", "cpu.cfs_period_us") == "100000"
        assert _cgroup(daemon, cid, "cpu", "cpu.shares") == "512"
        assert _cgroup(daemon, cid, "pids", "pids.max") == "50"
        inside = daemon.out("exec", cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        assert inside.strip() == str(64 << 20)
        daemon.cli("update", "-m", "96m", "--memory-swap", "128m", cid)
        assert _cgroup(daemon, cid, "memory", "memory.limit_in_bytes") == str(96 << 20)
        assert daemon.inspect(cid)["HostConfig"]["Memory"] == 96 << 20
    finally:
        daemon.cli("rm", "-f", cid)


def test_ulimits_and_init(daemon):
    out = daemon.out("run", "--rm", "--ulimit", "nofile=1024:2048", "busybox", "sh", "-c",
                     "ulimit -n; ulimit -Hn")
    assert out.split() == ["1024", "2048"]
    out = daemon.out("run", "--rm", "--init", "busybox", "ps", "-o", "pid,comm")
    assert "docker-init" in out or "tini" in out


def test_invalid_host_config_is_400(daemon):
    r = daemon.cli("run", "--rm", "-m", "1k", "busybox", "true", check=False)
    assert r.returncode == 125 and "Minimum memory limit" in r.stderr_text
    r = daemon.cli("run", "--rm", "--cap-add", "NOT_A_CAP", "busybox", "true", check=False)
    assert r.returncode != 0 and "CAP_NOT_A_CAP" in r.stderr_text
    r = daemon.cli("run", "--rm", "--restart", "always", "busybox", "true", check=False)
    assert r.returncode != 0 and "conflicting options" in r.stderr_text.lower()
