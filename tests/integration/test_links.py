"""Legacy links (`--link`) through the docker CLI, SDK and docker-compose, checked
against what dockerd 20.10 does: /etc/hosts lines and <ALIAS>_* variables on the
default bridge, inspect's HostConfig.Links, `docker ps` names, `rm --link`, a target
that stops or goes, and link aliases in the embedded DNS of user-defined networks."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid

import pytest

COMPOSE = shutil.which("docker-compose")


def _names(prefix: str) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"{prefix}tgt{tag}", f"{prefix}par{tag}"


def _rm(daemon, *names: str) -> None:
    for n in names:
        daemon.cli("rm", "-f", n, check=False)


def _env(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_link_hosts_and_environment(daemon):
    tgt, par = _names("lk")
    try:
        daemon.cli("run", "-d", "--name", tgt, "-h", "tgthost", "-e", "FOO=bar", "-e",
                   "A_B=c", "--expose", "80", "--expose", "8080/udp", "--expose", "9000-9002",
                   "busybox", "sleep", "300")
        tgt_ip = daemon.inspect(tgt)["NetworkSettings"]["IPAddress"]
        daemon.cli("run", "-d", "--name", par, "--link", f"{tgt}:db", "--link", tgt,
                   "--add-host", "foo:1.2.3.4", "busybox", "sleep", "300")
        hosts = daemon.out("exec", par, "cat", "/etc/hosts").splitlines()
        # after the --add-host entries, before the container's own line (dockerd's order)
        assert hosts[6:9] == [f"1.2.3.4\tfoo", f"{tgt_ip}\tdb tgthost {tgt}",
                              f"{tgt_ip}\t{tgt} tgthost"], hosts
        env = _env(daemon.out("exec", par, "env"))
        tgt_alias = tgt.upper()
        expected = {
            "DB_PORT": f"tcp://{tgt_ip}:80",
            "DB_PORT_80_TCP": f"tcp://{tgt_ip}:80", "DB_PORT_80_TCP_ADDR": tgt_ip,
            "DB_PORT_80_TCP_PORT": "80", "DB_PORT_80_TCP_PROTO": "tcp",
            "DB_PORT_8080_UDP": f"udp://{tgt_ip}:8080", "DB_PORT_8080_UDP_PROTO": "udp",
            "DB_PORT_9000_TCP_START": f"tcp://{tgt_ip}:9000",
            "DB_PORT_9000_TCP_END": f"tcp://{tgt_ip}:9002",
            "DB_PORT_9000_TCP_PORT_START": "9000", "DB_PORT_9000_TCP_PORT_END": "9002",
            "DB_PORT_9001_TCP": f"tcp://{tgt_ip}:9001",
            "DB_NAME": f"/{par}/db", "DB_ENV_FOO": "bar", "DB_ENV_A_B": "c",
            f"{tgt_alias}_NAME": f"/{par}/{tgt}", f"{tgt_alias}_ENV_FOO": "bar",
        }
        assert {k: env.get(k) for k in expected} == expected
        assert "DB_ENV_PATH" not in env and "DB_ENV_HOSTNAME" not in env
        # the link resolves (busybox ping is enough: /etc/hosts is what it reads)
        daemon.cli("exec", par, "ping", "-c", "1", "-W", "2", "db")
    finally:
        _rm(daemon, par, tgt)


def test_link_inspect_ps_names_and_rm_link(daemon):
    tgt, par = _names("lk")
    try:
        daemon.cli("run", "-d", "--name", tgt, "busybox", "sleep", "300")
        daemon.cli("run", "-d", "--name", par, "--link", f"{tgt}:db", "--link", tgt,
                   "busybox", "sleep", "300")
        assert sorted(daemon.inspect(par)["HostConfig"]["Links"]) == \
            [f"/{tgt}:/{par}/db", f"/{tgt}:/{par}/{tgt}"]
        assert daemon.inspect(tgt)["HostConfig"]["Links"] is None
        # a link name names its target
        assert daemon.inspect(f"{par}/db")["Name"] == f"/{tgt}"
        names = daemon.out("ps", "--no-trunc", "--filter", f"name={tgt}",
                           "--format", "{{.Names}}").split()
        assert names == [f"{par}/db,{par}/{tgt},{tgt}"]
        # the CLI hides link names without --no-trunc, as with dockerd
        assert daemon.out("ps", "--filter", f"name={tgt}", "--format", "{{.Names}}").split() \
            == [tgt]

        r = daemon.cli("rm", "--link", par, check=False)
        assert r.returncode == 1
        assert "Conflict, cannot remove the default link name of the container" in r.stderr_text
        r = daemon.cli("rm", "--link", f"/{par}/nosuch", check=False)
        assert f"No such container: {par}/nosuch" in r.stderr_text
        assert daemon.out("rm", "--link", f"/{par}/db").strip() == f"/{par}/db"
        assert daemon.inspect(par)["HostConfig"]["Links"] == [f"/{tgt}:/{par}/{tgt}"]
        hosts = daemon.out("exec", par, "cat", "/etc/hosts")
        assert "\tdb " not in hosts and f"\t{tgt} " in hosts
        assert daemon.inspect(tgt)["State"]["Running"]         # the target stays
        r = daemon.cli("rm", "--link", f"/{par}/db", check=False)
        assert f"No such container: {par}/db" in r.stderr_text
    finally:
        _rm(daemon, par, tgt)


def test_link_create_errors(daemon):
    tgt, par = _names("lk")
    hostc = par + "h"
    try:
        daemon.cli("run", "-d", "--name", tgt, "busybox", "sleep", "300")
        daemon.cli("run", "-d", "--name", hostc, "--network", "host", "busybox", "sleep", "300")
        cases = [
            (["--link", "nosuch:x"], "could not get container for nosuch: No such container: "
                                     "nosuch"),
            (["--link", f"{hostc}:h"], "conflicting options: host type networking can't be "
                                       "used with links. This would result in undefined "
                                       "behavior"),
            (["--network", "host", "--link", f"{tgt}:x"], "conflicting options: host type "
                                                          "networking can't be used with links"),
            (["--network", f"container:{tgt}", "--link", f"{tgt}:x"],
             "conflicting options: container type network can't be used with links"),
        ]
        before = daemon.out("ps", "-aq").split()
        for args, message in cases:
            r = daemon.cli("create", *args, "busybox", "true", check=False)
            assert r.returncode != 0 and message in r.stderr_text, (args, r.stderr_text)
        assert daemon.out("ps", "-aq").split() == before
    finally:
        _rm(daemon, hostc, tgt)


def test_link_to_stopped_or_removed_target(daemon):
    tgt, par = _names("lk")
    other = par + "x"
    try:
        daemon.cli("create", "--name", tgt, "busybox", "sleep", "300")
        # creating is fine; starting needs the target running
        daemon.cli("create", "--name", other, "--link", f"{tgt}:x", "busybox", "true")
        r = daemon.cli("start", other, check=False)
        assert r.returncode != 0
        assert f"Cannot link to a non running container: /{tgt} AS /{other}/x" in r.stderr_text
        state = daemon.inspect(other)["State"]
        assert state["ExitCode"] == 128 and "Cannot link to a non running" in state["Error"]

        daemon.cli("start", tgt)
        daemon.cli("run", "-d", "--name", par, "--link", f"{tgt}:db", "busybox", "sleep", "300")
        daemon.cli("rm", "-f", tgt)
        daemon.cli("run", "-d", "--name", tgt, "busybox", "sleep", "300")
        # the link was to the removed container (by id): the parent cannot start again
        r = daemon.cli("restart", par, check=False)
        assert r.returncode != 0
        assert f"Cannot link to a non running container: /{tgt} AS /{par}/db" in r.stderr_text
        assert daemon.inspect(par)["HostConfig"]["Links"] == [f"/{tgt}:/{par}/db"]
    finally:
        _rm(daemon, par, other, tgt)


def test_link_alias_on_user_network_dns(daemon):
    tag = uuid.uuid4().hex[:8]
    net, a, b, c = f"lkn{tag}", f"lka{tag}", f"lkb{tag}", f"lkc{tag}"
    try:
        daemon.cli("network", "create", net)
        daemon.cli("run", "-d", "--name", a, "--network", net, "busybox", "sleep", "300")
        ip = daemon.inspect(a)["NetworkSettings"]["Networks"][net]["IPAddress"]
        # a link to a container that does not exist is fine on a user-defined network
        daemon.cli("run", "-d", "--name", b, "--network", net, "--link", f"{a}:db",
                   "--link", "nosuch:gone", "busybox", "sleep", "300")
        info = daemon.inspect(b)
        assert info["HostConfig"]["Links"] is None
        out = daemon.out("exec", b, "nslookup", "db", "127.0.0.11")
        assert ip in out, out
        assert ip in daemon.out("exec", b, "nslookup", f"db.{net}", "127.0.0.11")
        # only for the linking container; no env, no hosts line
        daemon.cli("run", "-d", "--name", c, "--network", net, "busybox", "sleep", "300")
        r = daemon.cli("exec", c, "nslookup", "db", "127.0.0.11", check=False)
        assert ip not in r.stdout_text
        assert "DB_NAME" not in daemon.out("exec", b, "env")
        assert "\tdb" not in daemon.out("exec", b, "cat", "/etc/hosts")
    finally:
        _rm(daemon, a, b, c)
        daemon.cli("network", "rm", net, check=False)


def test_link_sdk_raw_api(sdk, daemon):
    tgt, par = _names("lks")
    try:
        t = sdk.containers.run("busybox", "sleep 300", name=tgt, detach=True,
                               environment={"K": "v"})
        out = sdk.containers.run("busybox", "sh -c 'echo $DB_ENV_K; echo $DB_NAME'",
                                 name=par, links={tgt: "db"}, remove=False)
        assert out.decode().split() == ["v", f"/{par}/db"]
        assert sdk.api.inspect_container(par)["HostConfig"]["Links"] == [f"/{tgt}:/{par}/db"]
        sdk.api.remove_container(f"{par}/db", link=True)
        assert sdk.api.inspect_container(par)["HostConfig"]["Links"] is None
        assert t.status in ("created", "running")
    finally:
        _rm(daemon, par, tgt)


COMPOSE_FILE = """\
version: "2.4"
services:
  db:
    image: busybox
    command: sleep 300
    environment: [SECRET=s3]
  legacy:
    image: busybox
    network_mode: bridge
    links: ["db:database"]
    command: sh -c "echo $$DATABASE_ENV_SECRET; grep -c database /etc/hosts; sleep 300"
  app:
    image: busybox
    links: ["db:store"]
    command: sleep 300
"""


@pytest.mark.skipif(COMPOSE is None, reason="docker-compose is not installed")
def test_compose_links(daemon, tmp_path):
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE.replace(
        "  db:\n", "  db:\n    network_mode: bridge\n", 1))
    project = f"pdl{os.getpid()}"
    env = dict(os.environ, DOCKER_HOST=daemon.host, DOCKER_CONFIG=str(daemon.base / "cli"))

    def compose(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([COMPOSE, "-p", project, *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
    try:
        r = compose("up", "-d", "db", "legacy")
        assert r.returncode == 0, r.stderr
        legacy = f"{project}_legacy_1"
        logs = daemon.out("logs", legacy)
        assert logs.split()[:2] == ["s3", "1"], logs
        links = daemon.inspect(legacy)["HostConfig"]["Links"]
        assert f"/{project}_db_1:/{legacy}/database" in links, links
    finally:
        r = compose("down", "-v")
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(COMPOSE is None, reason="docker-compose is not installed")
def test_compose_links_on_project_network(daemon, tmp_path):
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE)
    project = f"pdm{os.getpid()}"
    env = dict(os.environ, DOCKER_HOST=daemon.host, DOCKER_CONFIG=str(daemon.base / "cli"))

    def compose(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([COMPOSE, "-p", project, *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
    try:
        r = compose("up", "-d", "db", "app")
        assert r.returncode == 0, r.stderr
        app = f"{project}_app_1"
        ip = daemon.inspect(f"{project}_db_1")["NetworkSettings"]["Networks"][
            f"{project}_default"]["IPAddress"]
        out = daemon.out("exec", app, "nslookup", "store", "127.0.0.11")
        assert re.search(rf"Address: {re.escape(ip)}\b", out), out
    finally:
        r = compose("down", "-v")
    assert r.returncode == 0, r.stderr
