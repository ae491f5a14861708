"""Stop, kill, restart, pause, rename, wait, rm, restart policies."""
from __future__ import annotations

import time


def _state(daemon, ref: str) -> str:
    return daemon.out("inspect", "-f", "{{.State.Status}}", ref).strip()


def test_stop_uses_sigterm_and_timeout(daemon):
    daemon.cli("run", "-d", "--name", "trapper", "busybox", "sh", "-c",
               "trap 'exit 11' TERM; while true; do sleep 0.1; done")
    t = time.time()
    daemon.cli("stop", "trapper")
    assert time.time() - t < 5
    assert daemon.out("inspect", "-f", "{{.State.ExitCode}}", "trapper").strip() == "11"
    daemon.cli("start", "trapper")
    assert _state(daemon, "trapper") == "running"
    t = time.time()
    daemon.cli("stop", "-t", "1", "-s", "USR1", "trapper")   # USR1 is not trapped -> dies
    assert time.time() - t < 5
    daemon.cli("rm", "trapper")


def test_kill_restart_pause_rename(daemon):
    daemon.cli("run", "-d", "--name", "lc", "busybox", "sleep", "300")
    daemon.cli("pause", "lc")
    assert _state(daemon, "lc") == "paused"
    assert "(Paused)" in daemon.out("ps", "--filter", "name=lc", "--format", "{{.Status}}")
    daemon.cli("unpause", "lc")
    assert _state(daemon, "lc") == "running"
    pid1 = daemon.out("inspect", "-f", "{{.State.Pid}}", "lc").strip()
    daemon.cli("restart", "-t", "1", "lc")
    pid2 = daemon.out("inspect", "-f", "{{.State.Pid}}", "lc").strip()
    assert pid1 != pid2 and _state(daemon, "lc") == "running"
    daemon.cli("rename", "lc", "lc2")
    assert daemon.out("inspect", "-f", "{{.Name}}", "lc2").strip() == "/lc2"
    daemon.cli("kill", "-s", "KILL", "lc2")
    assert daemon.out("wait", "lc2").strip() == "137"
    assert _state(daemon, "lc2") == "exited"
    r = daemon.cli("rm", "lc2")
    assert r.returncode == 0
    r = daemon.cli("inspect", "lc2", check=False)
    assert r.returncode != 0


def test_rm_running_needs_force(daemon):
    daemon.cli("run", "-d", "--name", "rmme", "busybox", "sleep", "300")
    r = daemon.cli("rm", "rmme", check=False)
    assert r.returncode != 0 and "stop the container before removing" in r.stderr_text
    daemon.cli("rm", "-f", "rmme")


def test_wait_returns_exit_code(daemon):
    daemon.cli("run", "-d", "--name", "waiter", "busybox", "sh", "-c", "sleep 0.5; exit 9")
    assert daemon.out("wait", "waiter").strip() == "9"
    daemon.cli("rm", "waiter")


def test_restart_policy_on_failure(daemon):
    daemon.cli("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox",
               "sh", "-c", "exit 1")
    deadline = time.time() + 15
    while time.time() < deadline:
        doc = daemon.inspect("flaky")
        if doc["RestartCount"] == 2 and doc["State"]["Status"] == "exited":
            break
        time.sleep(0.2)
    doc = daemon.inspect("flaky")
    assert doc["RestartCount"] == 2 and doc["State"]["Status"] == "exited"
    daemon.cli("rm", "flaky")


def test_restart_policy_always_and_stop(daemon):
    daemon.cli("run", "-d", "--name", "phoenix", "--restart", "always", "busybox",
               "sh", "-c", "sleep 0.3; exit 0")
    deadline = time.time() + 15
    while daemon.inspect("phoenix")["RestartCount"] < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert daemon.inspect("phoenix")["RestartCount"] >= 2
    daemon.cli("stop", "-t", "1", "phoenix")
    time.sleep(1)
    assert _state(daemon, "phoenix") == "exited"
    daemon.cli("rm", "phoenix")


def test_top_stats_changes_export(daemon, tmp_path):
    daemon.cli("run", "-d", "--name", "misc", "busybox", "sh", "-c",
               "echo x > /newfile; sleep 300")
    try:
        time.sleep(0.3)
        top = daemon.out("top", "misc")
        assert "sleep 300" in top and "PID" in top.splitlines()[0]
        stats = daemon.out("stats", "--no-stream", "--format",
                           "{{.Name}} {{.MemUsage}} {{.PIDs}}", "misc")
        name, *rest = stats.split()
        assert name == "misc" and rest[-1].isdigit() and int(rest[-1]) >= 1
        changes = daemon.out("diff", "misc")
        assert "A /newfile" in changes
        tar = tmp_path / "export.tar"
        daemon.cli("export", "-o", str(tar), "misc")
        import tarfile
        with tarfile.open(tar) as t:
            names = set(t.getnames())
        assert "newfile" in names and "bin/busybox" in names
    finally:
        daemon.cli("rm", "-f", "misc")


def test_cp_both_ways(daemon, tmp_path):
    daemon.cli("run", "-d", "--name", "cpt", "busybox", "sh", "-c",
               "mkdir -p /data && echo inside > /data/f.txt && ln -s /data /link && sleep 300")
    try:
        time.sleep(0.3)
        daemon.cli("cp", "cpt:/data/f.txt", str(tmp_path / "f.txt"))
        assert (tmp_path / "f.txt").read_text() == "inside\n"
        daemon.cli("cp", "cpt:/link/f.txt", str(tmp_path / "g.txt"))
        assert (tmp_path / "g.txt").read_text() == "inside\n"
        (tmp_path / "up").mkdir()
        (tmp_path / "up" / "h.txt").write_text("from host\n")
        daemon.cli("cp", str(tmp_path / "up"), "cpt:/data/")
        assert daemon.out("exec", "cpt", "cat", "/data/up/h.txt") == "from host\n"
        daemon.cli("cp", str(tmp_path / "up" / "h.txt"), "cpt:/link/h2.txt")
        assert daemon.out("exec", "cpt", "cat", "/data/h2.txt") == "from host\n"
        r = daemon.cli("cp", "cpt:/nope", str(tmp_path / "x"), check=False)
        assert r.returncode != 0 and "Could not find the file" in r.stderr_text
    finally:
        daemon.cli("rm", "-f", "cpt")
    # a stopped container can be copied from too
    daemon.cli("create", "--name", "cpstopped", "busybox")
    try:
        daemon.cli("cp", "cpstopped:/etc/passwd", str(tmp_path / "passwd"))
        assert "root:x:0:0" in (tmp_path / "passwd").read_text()
    finally:
        daemon.cli("rm", "cpstopped")


def test_kill_answers_after_the_exit_is_recorded(daemon):
    """dockerd's kill (SIGKILL) waits: inspect right after sees exited 137, rm needs no -f."""
    daemon.cli("run", "-d", "--name", "killme", "busybox", "sleep", "300")
    try:
        for _ in range(3):
            daemon.cli("kill", "killme")
            doc = daemon.inspect("killme")
            assert doc["State"]["Status"] == "exited" and doc["State"]["ExitCode"] == 137
            daemon.cli("start", "killme")
        daemon.cli("kill", "killme")
        daemon.cli("rm", "killme")
    finally:
        daemon.cli("rm", "-f", "killme", check=False)


def test_state_conflicts_use_dockerd_wording(daemon):
    daemon.cli("run", "-d", "--name", "words", "busybox", "sleep", "300")
    try:
        cid = daemon.out("inspect", "-f", "{{.Id}}", "words").strip()
        daemon.cli("pause", "words")
        r = daemon.cli("pause", "words", check=False)
        assert f"Container {cid} is already paused" in r.stderr_text
        r = daemon.cli("start", "words", check=False)
        assert "cannot start a paused container, try unpause instead" in r.stderr_text
        r = daemon.cli("rm", "words", check=False)
        assert 'cannot remove container "/words": container is paused' in r.stderr_text
        daemon.cli("unpause", "words")
        r = daemon.cli("unpause", "words", check=False)
        assert f"Container {cid} is not paused" in r.stderr_text
        daemon.cli("kill", "words")
        r = daemon.cli("kill", "words", check=False)
        assert f"Container {cid} is not running" in r.stderr_text
        r = daemon.cli("pause", "words", check=False)
        assert f"Container {cid} is not running" in r.stderr_text
    finally:
        daemon.cli("rm", "-f", "words", check=False)


def test_update_applies_and_refuses_like_dockerd(daemon):
    daemon.cli("run", "-d", "--name", "upd", "-m", "64m", "busybox", "sleep", "300")
    daemon.cli("run", "-d", "--name", "upd-cpus", "--cpus", "1", "busybox", "sleep", "300")
    daemon.cli("run", "-d", "--rm", "--name", "upd-rm", "busybox", "sleep", "300")
    try:
        cid = daemon.out("inspect", "-f", "{{.Id}}", "upd").strip()
        daemon.cli("update", "-m", "100m", "--cpu-shares", "512", "--restart",
                   "on-failure:3", "upd")
        hc = daemon.inspect("upd")["HostConfig"]
        assert (hc["Memory"], hc["CpuShares"]) == (100 << 20, 512)
        assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
        # above the swap limit dockerd set at create (twice the first memory limit)
        r = daemon.cli("update", "-m", "200m", "upd", check=False)
        assert r.returncode != 0 and f"Cannot update container {cid}: Memory limit should " \
            "be smaller than already set memoryswap limit" in r.stderr_text, r.stderr_text
        assert daemon.inspect("upd")["HostConfig"]["Memory"] == 100 << 20
        r = daemon.cli("update", "--cpu-quota", "50000", "upd-cpus", check=False)
        assert "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already " \
            "been set" in r.stderr_text, r.stderr_text
        r = daemon.cli("update", "--restart", "always", "upd-rm", check=False)
        assert "Restart policy cannot be updated because AutoRemove is enabled for the " \
            "container" in r.stderr_text, r.stderr_text
        assert daemon.inspect("upd-rm")["HostConfig"]["RestartPolicy"]["Name"] == "no"
    finally:
        daemon.cli("rm", "-f", "upd", "upd-cpus", "upd-rm", check=False)
