"""docker exec: attached, detached, env, user, exit codes, inspect."""
from __future__ import annotations

from polling import wait_until


def test_exec_variants(daemon):
    daemon.cli("run", "-d", "--name", "ex", "busybox", "sleep", "300")
    try:
        assert daemon.out("exec", "ex", "echo", "hi") == "hi\n"
        r = daemon.cli("exec", "ex", "sh", "-c", "echo o; echo e >&2; exit 4", check=False)
        assert r.returncode == 4 and r.stdout_text == "o\n" and r.stderr_text == "e\n"
        out = daemon.out("exec", "-e", "X=1", "-u", "65534", "-w", "/tmp", "ex",
                         "sh", "-c", "echo $X $(id -u) $(pwd)")
        assert out == "1 65534 /tmp\n"
        r = daemon.cli("exec", "-i", "ex", "cat", input=b"piped\n")
        assert r.stdout_text == "piped\n"
        daemon.cli("exec", "-d", "ex", "sh", "-c", "echo bg > /bg.txt")
        wait_until(lambda: daemon.cli("exec", "ex", "cat", "/bg.txt", check=False)
                   .stdout_text == "bg\n", what="the detached exec's file")
        r = daemon.cli("exec", "ex", "no-such-cmd", check=False)
        assert r.returncode == 126 or r.returncode == 127
    finally:
        daemon.cli("rm", "-f", "ex")


def test_exec_on_stopped_container_is_409(daemon):
    daemon.cli("create", "--name", "exstopped", "busybox")
    try:
        r = daemon.cli("exec", "exstopped", "true", check=False)
        assert r.returncode != 0 and "is not running" in r.stderr_text
    finally:
        daemon.cli("rm", "exstopped")


def test_exec_records_go_with_their_container(sdk):
    c = sdk.containers.run("busybox", ["sleep", "300"], detach=True)
    try:
        eid = sdk.api.exec_create(c.id, ["true"])["Id"]
        sdk.api.exec_start(eid)
        assert sdk.api.exec_inspect(eid)["ContainerID"] == c.id
    finally:
        c.remove(force=True)
    import docker
    try:
        sdk.api.exec_inspect(eid)
    except docker.errors.NotFound:
        pass
    else:
        raise AssertionError("exec inspect of a removed container's exec must be 404")
