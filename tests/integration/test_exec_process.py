"""The process `docker exec` starts is set up as runc exec sets it up (the
container's namespaces, cgroups, seccomp filter, capabilities, rlimits, user,
groups, HOME), and the daemon starts it itself, without a runc process."""
from __future__ import annotations

import os

import docker

STATUS_KEYS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp",
               "Seccomp_filters")
SAME_NS_AND_CGROUPS = (
    'for n in ipc mnt net pid uts cgroup; do '
    '[ "$(readlink /proc/1/ns/$n)" = "$(readlink /proc/self/ns/$n)" ] || echo "ns $n"; done; '
    'diff /proc/1/cgroup /proc/self/cgroup >/dev/null && echo same')


def status(daemon, name: str, *opts: str, pid: str = "self") -> dict[str, str]:
    out = daemon.out("exec", *opts, name, "cat", f"/proc/{pid}/status")
    fields = (line.partition(":") for line in out.splitlines())
    return {k: v.strip() for k, _, v in fields if k in STATUS_KEYS}


def test_exec_joins_the_container_as_its_init_runs(daemon):
    daemon.cli("run", "-d", "--name", "exproc", "--cap-drop", "NET_RAW", "--cap-add", "SYS_NICE",
               "--ulimit", "nofile=1234:2345", "--group-add", "555",
               "--security-opt", "no-new-privileges", "busybox", "sleep", "300")
    try:
        init = status(daemon, "exproc", pid="1")
        assert init["NoNewPrivs"] == "1" and init["Seccomp"] == "2"
        assert status(daemon, "exproc") == init
        assert daemon.out("exec", "exproc", "sh", "-c", SAME_NS_AND_CGROUPS) == "same\n"
        assert daemon.out("exec", "exproc", "sh", "-c", "ulimit -n; ulimit -Hn") == "1234\n2345\n"
        # another user: no capabilities but the bounding set; its groups and its HOME
        user = status(daemon, "exproc", "-u", "nobody")
        assert user["CapEff"] == user["CapPrm"] == "0000000000000000"
        assert user["CapBnd"] == init["CapBnd"]
        assert daemon.out("exec", "-u", "nobody", "exproc", "sh", "-c",
                          "id -G; echo $HOME; pwd") == "65534 555\n/home\n/\n"
        assert daemon.out("exec", "-e", "HOME=/x", "-w", "/tmp", "exproc", "sh", "-c",
                          "echo $HOME; pwd") == "/x\n/tmp\n"
        # a privileged exec gets every capability the daemon has, in a filtered process
        priv = status(daemon, "exproc", "--privileged")
        assert int(priv["CapEff"], 16) > int(init["CapEff"], 16) and priv["Seccomp"] == "2"
        # nothing of the daemon's leaks into the process: stdio only, TTY or not (the
        # shell's fds as its background child inherited them, before any pipeline)
        for opts in ((), ("-t",), ("-i",)):
            out = daemon.out("exec", *opts, "exproc", "sh", "-c",
                             "sleep 1 & ls /proc/$!/fd | xargs")
            assert out.strip() == "0 1 2", (opts, out)
        # the process is the container's: docker top lists it while it runs
        daemon.cli("exec", "-d", "exproc", "sleep", "123")
        top = daemon.out("top", "exproc")
        assert "sleep 123" in top
    finally:
        daemon.cli("rm", "-f", "exproc")


def test_plain_exec_is_started_by_the_daemon(daemon):
    api = docker.APIClient(base_url=daemon.host)
    daemon.cli("run", "-d", "--name", "exfast", "busybox", "sleep", "300")
    try:
        eid = api.exec_create("exfast", ["true"])["Id"]
        api.exec_start(eid)
        assert api.exec_inspect(eid)["ExitCode"] == 0
        assert f"exec {eid[:12]}: started by the daemon" in daemon.log_path.read_text()
    finally:
        api.close()
        daemon.cli("rm", "-f", "exfast")


def test_a_container_that_may_ptrace_gets_its_execs_from_runc(daemon):
    """With CAP_SYS_PTRACE its processes could look into the forked side before it
    execs (the dumpable check does not stop that capability): runc starts those."""
    api = docker.APIClient(base_url=daemon.host)
    daemon.cli("run", "-d", "--name", "exptrace", "--cap-add", "SYS_PTRACE", "busybox",
               "sleep", "300")
    try:
        eid = api.exec_create("exptrace", ["true"])["Id"]
        api.exec_start(eid)
        assert api.exec_inspect(eid)["ExitCode"] == 0
        log = daemon.log_path.read_text()
        assert f"exec {eid[:12]}: started with " in log
        assert f"exec {eid[:12]}: started by the daemon" not in log
    finally:
        api.close()
        daemon.cli("rm", "-f", "exptrace")


def test_an_exec_created_before_a_restart_starts_in_the_new_container(daemon):
    """The spec and plan made at exec create are not used for another init."""
    api = docker.APIClient(base_url=daemon.host)
    daemon.cli("run", "-d", "--name", "exrestart", "busybox", "sleep", "300")
    try:
        eid = api.exec_create("exrestart", ["sh", "-c", "cat /proc/1/cmdline; echo"])["Id"]
        daemon.cli("restart", "-t", "0", "exrestart")
        assert api.exec_start(eid) == b"sleep\x00300\x00\n"
        assert api.exec_inspect(eid)["ExitCode"] == 0
    finally:
        api.close()
        daemon.cli("rm", "-f", "exrestart")


def test_the_fork_server_runs_from_a_sealed_copy_of_the_interpreter(daemon):
    """Until it execs, an exec's /proc/self/exe is the fork server's binary (a
    `#!/proc/self/exe` script in the container would run it there): never the host's
    file, but a sealed memfd copy, as runc runs from one."""
    daemon.cli("run", "-d", "--name", "exsealed", "busybox", "sleep", "300")
    try:
        assert daemon.out("exec", "exsealed", "true") == ""
        servers = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"pydockerd.runtime.nsserver" in f.read():
                        servers.append(pid)
            except OSError:
                continue
        mine = [pid for pid in servers
                if open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[-2]
                == str(daemon.proc.pid).encode()]
        assert mine, servers
        exe = os.readlink(f"/proc/{mine[0]}/exe")
        assert exe.startswith("/memfd:pydockerd-exec"), exe
    finally:
        daemon.cli("rm", "-f", "exsealed")
