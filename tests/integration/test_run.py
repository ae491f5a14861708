"""`docker run` end to end through the CLI."""
from __future__ import annotations

import json
import time


def test_run_rm_echo(daemon):
    assert daemon.out("run", "--rm", "busybox", "echo", "hello") == "hello\n"


def test_layered_image_whiteouts_and_opaque(daemon):
    assert daemon.out("run", "--rm", "layered:latest") == "/data/dir/c.txt\n/data/keep.txt\n"


def test_image_config_merged(daemon):
    out = daemon.out("run", "--rm", "layered", "sh", "-c", "pwd; env")
    lines = out.splitlines()
    assert lines[0] == "/data"
    assert "LAYERED=yes" in lines
    assert any(line.startswith("HOSTNAME=") for line in lines)


def test_exit_code_propagates(daemon):
    r = daemon.cli("run", "--rm", "busybox", "sh", "-c", "exit 42", check=False)
    assert r.returncode == 42


def test_stdout_stderr_separate(daemon):
    r = daemon.cli("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert r.stdout_text == "out\n"
    assert r.stderr_text == "err\n"


def test_stdin_pipe_half_close(daemon):
    r = daemon.cli("run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done",
                   input=b"line1\nline2\n")
    assert r.stdout_text == "line1\nline2\ndone\n"


def test_missing_command_127_and_no_leftovers(daemon):
    before = set(daemon.out("ps", "-aq").split())
    r = daemon.cli("run", "--rm", "busybox", "no-such-binary", check=False)
    assert r.returncode == 127
    assert "executable file not found" in r.stderr_text
    assert set(daemon.out("ps", "-aq").split()) == before      # --rm waited for removal


def test_detached_logs_and_follow(daemon):
    cid = daemon.out("run", "-d", "busybox", "sh", "-c",
                     "for i in 1 2 3; do echo line$i; sleep 0.2; done").strip()
    out = daemon.out("logs", "-f", cid, timeout=20)
    assert out == "line1\nline2\nline3\n"
    assert daemon.out("logs", "--tail", "1", cid) == "line3\n"
    ts = daemon.out("logs", "-t", cid).splitlines()
    assert len(ts) == 3 and ts[0].endswith(" line1") and "T" in ts[0].split()[0]
    daemon.cli("rm", cid)


def test_env_workdir_user_hostname(daemon):
    out = daemon.out("run", "--rm", "-e", "FOO=bar", "-w", "/tmp", "-u", "65534:65534",
                     "-h", "myhost", "busybox", "sh", "-c", "echo $FOO; pwd; id -u; hostname")
    assert out.split() == ["bar", "/tmp", "65534", "myhost"]


def test_inspect_document(daemon):
    cid = daemon.out("create", "--name", "insp", "-l", "a=b", "busybox", "sleep", "5").strip()
    try:
        doc = daemon.inspect("insp")
        assert doc["Id"] == cid and doc["Name"] == "/insp"
        assert doc["State"]["Status"] == "created"
        assert doc["Config"]["Labels"]["a"] == "b"
        assert doc["Config"]["Cmd"] == ["sleep", "5"]
        assert doc["HostConfig"]["NetworkMode"] == "bridge"
        assert doc["Path"] == "sleep" and doc["Args"] == ["5"]
        assert doc["Image"].startswith("sha256:")
        assert daemon.out("inspect", "-f", "{{.Config.Image}} {{.State.Running}}",
                          "insp").strip() == "busybox false"
    finally:
        daemon.cli("rm", "-f", "insp")


def test_bridge_network_files(daemon):
    out = daemon.out("run", "--rm", "--add-host", "foo:1.2.3.4", "busybox", "sh", "-c",
                     "ip -4 addr show eth0; ip route; cat /etc/hosts; cat /etc/hostname")
    subnet = daemon.bip.rsplit(".", 1)[0]
    gateway = daemon.bip.split("/")[0]
    assert f"inet {subnet}." in out
    assert f"default via {gateway}" in out
    assert "1.2.3.4\tfoo" in out
    assert "127.0.0.1\tlocalhost" in out
    out = daemon.out("run", "--rm", "busybox", "ping", "-c", "1", "-W", "2", gateway)
    assert "1 packets received" in out


def test_network_modes(daemon):
    out = daemon.out("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    assert "eth0" not in out and "lo" in out
    out = daemon.out("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link")
    assert daemon.bridge in out
    daemon.cli("run", "-d", "--name", "netowner", "busybox", "sleep", "30")
    try:
        ip = daemon.out("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "netowner").strip()
        out = daemon.out("run", "--rm", "--network", "container:netowner", "busybox",
                         "ip", "-4", "addr")
        assert ip in out
    finally:
        daemon.cli("rm", "-f", "netowner")


def test_ps_filters_and_format(daemon):
    a = daemon.out("run", "-d", "--name", "psa", "-l", "team=x", "busybox", "sleep", "30").strip()
    b = daemon.out("run", "--name", "psb", "busybox", "sh", "-c", "exit 3", check=False)
    try:
        running = daemon.out("ps", "--format", "{{.Names}}").split()
        assert "psa" in running and "psb" not in running
        allc = daemon.out("ps", "-a", "--format", "{{.Names}}|{{.Status}}").splitlines()
        assert any(x.startswith("psb|Exited (3)") for x in allc)
        assert daemon.out("ps", "-q", "--filter", "label=team=x").split() == [a[:12]]
        assert daemon.out("ps", "-a", "--filter", "exited=3",
                          "--format", "{{.Names}}").split() == ["psb"]
        assert "psb" in daemon.out("ps", "-a", "--filter", "status=exited",
                                   "--format", "{{.Names}}").split()
        assert daemon.out("ps", "--filter", "name=psa", "--format", "{{.ID}}").strip() == a[:12]
        assert "psa" in daemon.out("ps", "--filter", "ancestor=busybox",
                                   "--format", "{{.Names}}").split()
        assert daemon.out("ps", "-a", "-n", "1", "--format", "{{.Names}}").split() == ["psb"]
        js = json.loads(daemon.out("ps", "--filter", "name=psa", "--format", "json"))
        assert js["Names"] == "psa" and js["State"] == "running"
    finally:
        daemon.cli("rm", "-f", "psa", "psb")
    del b


def test_runtime_selection(daemon):
    r = daemon.cli("run", "--rm", "--runtime", "nope", "busybox", "true", check=False)
    assert r.returncode == 125 and "unknown or invalid runtime name: nope" in r.stderr_text
    assert daemon.out("run", "--rm", "--runtime", "runc", "busybox", "echo", "ok") == "ok\n"
    cid = daemon.out("create", "busybox").strip()
    assert daemon.out("inspect", "-f", "{{.HostConfig.Runtime}}", cid).strip() == "runc"
    daemon.cli("rm", cid)


def test_pid_ipc_uts_modes_and_domainname(daemon):
    import os
    host_pid_ns = os.readlink("/proc/self/ns/pid")
    out = daemon.out("run", "--rm", "--pid", "host", "--ipc", "host", "busybox", "sh", "-c",
                     "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc")
    pid_ns, ipc_ns = out.split()
    assert pid_ns == host_pid_ns and ipc_ns == os.readlink("/proc/self/ns/ipc")
    out = daemon.out("run", "--rm", "-h", "web", "--domainname", "example.org", "busybox",
                     "sh", "-c", "hostname; cat /proc/sys/kernel/domainname")
    assert out.split() == ["web", "example.org"]


def test_health_status_events(daemon):
    import time
    since = str(time.time())
    cid = daemon.out("run", "-d", "--health-cmd", "true", "--health-interval", "200ms",
                     "busybox", "sleep", "30").strip()
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            if daemon.out("inspect", "-f", "{{.State.Health.Status}}", cid).strip() == "healthy":
                break
            time.sleep(0.2)
        assert "(healthy)" in daemon.out("ps", "--filter", f"id={cid}", "--format",
                                         "{{.Status}}")
        assert daemon.out("ps", "-q", "--filter", "health=healthy").split() == [cid[:12]]
        out = daemon.out("events", "--since", since, "--until", str(time.time()),
                         "--filter", f"container={cid}", "--format", "{{.Action}}")
        assert "health_status: healthy" in out.splitlines()
    finally:
        daemon.cli("rm", "-f", cid)


def _root_options(daemon, *args: str) -> list[str]:
    line = daemon.out("run", *args, "busybox", "sh", "-c",
                      "grep '^overlay / ' /proc/mounts").split()
    return line[3].split(",")


def _volatile(options: list[str]) -> bool:
    return bool({"volatile", "fsync=volatile"} & set(options))     # the latter: Linux 6.15+


def test_rm_container_rw_layer_is_volatile(daemon, names, tmp_path):
    # nothing of an auto-remove container's rw layer is kept: no sync of the data
    # root's filesystem when it is unmounted (images/volatile.py)
    assert _volatile(_root_options(daemon, "--rm"))
    names.append("kept-layer")
    assert not _volatile(_root_options(daemon, "--name", "kept-layer"))
    # mounted again (after a restart, after a copy into it before its start)
    names.append("vol-again")
    daemon.cli("run", "-d", "--rm", "--name", "vol-again", "busybox", "sleep", "300")
    daemon.cli("restart", "-t", "0", "vol-again")
    assert daemon.out("exec", "vol-again", "sh", "-c", "echo hi > /f; cat /f") == "hi\n"
    daemon.cli("rm", "-f", "vol-again")
    (tmp_path / "x.txt").write_text("copied\n")
    names.append("vol-cp")
    daemon.cli("create", "--rm", "--name", "vol-cp", "busybox", "cat", "/x.txt")
    daemon.cli("cp", str(tmp_path / "x.txt"), "vol-cp:/x.txt")
    assert daemon.out("start", "-a", "vol-cp") == "copied\n"


def _leftovers(daemon, cid: str) -> list[str]:
    """The run's cgroups and runc state, which its end removes (runtime/destroy.py)."""
    import glob
    found = [p for depth in ("*", "*/*", "*/*/*")
             for p in glob.glob(f"/sys/fs/cgroup/{depth}/{cid}")]
    return found + glob.glob(str(daemon.base / "exec" / "runc" / cid))


def test_exit_releases_cgroups_and_runc_state(daemon, names):
    names += ["rel-own", "rel-hostpid"]
    for name, extra in (("rel-own", []), ("rel-hostpid", ["--pid", "host"])):
        cid = daemon.out("run", "-d", "--name", name, *extra, "busybox",
                         "sh", "-c", "sleep 30 & exec sleep 0.2").strip()
        assert daemon.out("wait", cid).strip() == "0"
        assert _leftovers(daemon, cid) == []
        daemon.cli("start", name)           # the same id runs again
        daemon.cli("stop", "-t", "0", name)
        assert _leftovers(daemon, cid) == []
