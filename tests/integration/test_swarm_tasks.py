"""Service tasks on pydockerd as a swarm worker of a private Moby manager
(tests/integration/moby_manager.py, drained: every task lands on pydockerd):
replicated services, scale, rm, jobs, failures, rejections, a container
removed by hand, templates, secrets and configs, a start-first update and a
rollback through the Docker SDK, leave."""
from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from conftest import cleanup_daemon, make_daemon
from moby_manager import MobyManager, manager_session
from polling import wait_until

TASK_LABELS = ("com.docker.swarm.task", "com.docker.swarm.task.id",
               "com.docker.swarm.task.name", "com.docker.swarm.node.id",
               "com.docker.swarm.service.id", "com.docker.swarm.service.name")


@pytest.fixture(scope="module")
def manager():
    yield from manager_session()


def start_worker(manager: MobyManager, images_dir: Path, prefix: str):
    """A started pydockerd that uses local images for its tasks; `join` loads busybox
    and joins it (setting `node_id`)."""
    d = make_daemon(Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp")), [])
    # no pull from the network: the local test images are used (dockerd's own switch)
    os.environ["DOCKER_SERVICE_PREFER_OFFLINE_IMAGE"] = "1"
    try:
        d.start()
    finally:
        del os.environ["DOCKER_SERVICE_PREFER_OFFLINE_IMAGE"]
    return d


def join(manager: MobyManager, d, images_dir: Path) -> None:
    d.cli("load", "-i", str(images_dir / "busybox.tar"))
    d.cli("swarm", "join", "--token", manager.join_token(), manager.addr)
    d.node_id = json.loads(d.out("info", "--format", "{{json .Swarm.NodeID}}"))


@pytest.fixture(scope="module")
def worker(manager: MobyManager, images_dir):
    """One pydockerd joined to the manager for the module; it leaves at the end and
    must have removed every task container."""
    d = start_worker(manager, images_dir, "pdt-swarm-")
    try:
        join(manager, d, images_dir)
        yield d
        assert "Node left the swarm." in d.out("swarm", "leave")
        assert d.out("ps", "-aq", "--filter", "label=com.docker.swarm.task") == ""
        assert not os.path.exists(os.path.join(d.exec_root, "swarm-files"))
        wait_until(lambda: _node_state(manager, d.node_id) == "down", 20,
                   what="the node to be down")
        manager.cli("node", "rm", d.node_id)
    finally:
        cleanup_daemon(d)
        if os.environ.get("KEEP_TEST_DIRS") != "1":
            shutil.rmtree(d.base, ignore_errors=True)


def _node_state(manager: MobyManager, node_id: str) -> str:
    return json.loads(manager.out("node", "inspect", node_id))[0]["Status"]["State"]


def create(manager: MobyManager, name: str, *args: str) -> str:
    # `sleep` as PID 1 ignores SIGTERM: a short grace period keeps stops quick
    manager.cli("service", "create", "--detach", "--no-resolve-image", "--name", name,
                "--stop-grace-period", "1s", *args)
    return name


def remove(manager: MobyManager, worker, name: str, wait: bool = True) -> None:
    manager.cli("service", "rm", name, check=False)
    if wait:
            wait_until(lambda: worker.out("ps", "-aq", "--filter",
                                      f"label=com.docker.swarm.service.name={name}") == "",
                   30, what=f"the containers of {name} to be removed")


def tasks(manager: MobyManager, service: str) -> list[dict]:
    """The service's tasks (listed again when one was removed between the list
    and the inspect: the manager reaps tasks of a scale-down meanwhile)."""
    for _ in range(10):
        ids = manager.out("service", "ps", "-q", "--no-trunc", service).split()
        if not ids:
            return []
        r = manager.cli("inspect", *ids, check=False)
        if r.returncode == 0:
            return json.loads(r.stdout)
    raise AssertionError(f"manager: docker inspect {' '.join(ids)}: {r.stderr.strip()}")


def wait_states(manager: MobyManager, service: str, want: list[str],
                timeout: float = 30) -> list[dict]:
    """The service's tasks once their sorted states are `want`."""
    def probe():
        ts = tasks(manager, service)
        return ts if sorted(t["Status"]["State"] for t in ts) == sorted(want) else None
    try:
        return wait_until(probe, timeout, interval=0.3, what=f"{service} tasks {want}")
    except AssertionError:
        raise AssertionError(f"{service}: {[(t['Status'], t['DesiredState']) for t in tasks(manager, service)]}")


def test_replicated_service_runs_scales_and_is_removed(manager, worker):
    svc = create(manager, "web", "--replicas", "2", "busybox", "sleep", "1000")
    try:
        ts = wait_states(manager, svc, ["running", "running"])
        for t in ts:
            assert t["NodeID"] == worker.node_id
            cid = t["Status"]["ContainerStatus"]["ContainerID"]
            c = worker.inspect(cid)
            assert c["Name"] == f"/web.{t['Slot']}.{t['ID']}"
            assert c["State"]["Running"] and c["State"]["Pid"] == \
                t["Status"]["ContainerStatus"]["PID"]
            labels = c["Config"]["Labels"]
            assert set(TASK_LABELS) <= set(labels)
            assert labels["com.docker.swarm.task.id"] == t["ID"]
            assert labels["com.docker.swarm.node.id"] == worker.node_id
            assert labels["com.docker.swarm.service.name"] == "web"
            assert c["Config"]["Cmd"] == ["sleep", "1000"]
            assert c["HostConfig"]["RestartPolicy"]["Name"] == "no"
        manager.cli("service", "scale", "--detach", f"{svc}=3")
        wait_states(manager, svc, ["running"] * 3)
        manager.cli("service", "scale", "--detach", f"{svc}=1")
        # the extra tasks are shut down, then removed with their containers
        t, = wait_states(manager, svc, ["running"])
        wait_until(lambda: worker.out("ps", "-aq", "--filter",
                                      "label=com.docker.swarm.service.name=web").split()
                   == [t["Status"]["ContainerStatus"]["ContainerID"][:12]], 20,
                   what="the scaled-down containers to go")
    finally:
        remove(manager, worker, svc)


def test_job_completes(manager, worker):
    svc = create(manager, "job", "--mode", "replicated-job", "busybox", "sh", "-c",
                 "echo done")
    try:
        t, = wait_states(manager, svc, ["complete"])
        assert t["Status"]["Message"] == "finished"
        c = worker.inspect(t["Status"]["ContainerStatus"]["ContainerID"])
        assert c["State"]["Status"] == "exited" and c["State"]["ExitCode"] == 0
        assert worker.out("logs", c["Id"]) == "done\n"
    finally:
        # a completed job task stays assigned (the manager does not remove it with
        # its service): its container goes when the node leaves
        remove(manager, worker, svc, wait=False)


def test_failing_task_and_rejected_image(manager, worker):
    failing = create(manager, "failing", "--restart-condition", "none", "busybox",
                     "sh", "-c", "exit 3")
    rejected = create(manager, "rejected", "--restart-condition", "none",
                      "127.0.0.1:9/no/such:image", "true")
    try:
        t, = wait_states(manager, failing, ["failed"])
        assert t["Status"]["Err"] == "task: non-zero exit (3)"
        assert t["Status"]["ContainerStatus"]["ExitCode"] == 3
        t, = wait_states(manager, rejected, ["rejected"])
        assert t["Status"]["Err"], t["Status"]
        assert "ContainerID" not in (t["Status"].get("ContainerStatus") or {})
    finally:
        remove(manager, worker, failing)
        remove(manager, worker, rejected)


def test_container_removed_by_hand_fails_its_task(manager, worker):
    svc = create(manager, "victim", "busybox", "sleep", "1000")
    try:
        t, = wait_states(manager, svc, ["running"])
        worker.cli("rm", "-f", t["Status"]["ContainerStatus"]["ContainerID"])
        # the task failed; the manager replaces it with a new one
        ts = wait_states(manager, svc, ["failed", "running"])
        old = next(x for x in ts if x["ID"] == t["ID"])
        assert old["Status"]["State"] == "failed" and old["Status"]["Err"]
    finally:
        remove(manager, worker, svc)


def test_templates_env_and_hostname(manager, worker):
    svc = create(manager, "tmpl", "--env", "TASK={{.Task.Name}}",
                 "--env", "NODE={{.Node.ID}}", "--hostname", "{{.Service.Name}}-{{.Task.Slot}}",
                 "busybox", "sleep", "1000")
    try:
        t, = wait_states(manager, svc, ["running"])
        c = worker.inspect(t["Status"]["ContainerStatus"]["ContainerID"])
        assert f"TASK=tmpl.1.{t['ID']}" in c["Config"]["Env"]
        assert f"NODE={worker.node_id}" in c["Config"]["Env"]
        assert worker.out("exec", c["Id"], "hostname").strip() == "tmpl-1"
    finally:
        remove(manager, worker, svc)


def test_secrets_and_configs(manager, worker):
    manager.cli("secret", "create", "s1", "-", input="top-secret-value")
    manager.cli("config", "create", "c1", "-", input="setting=1\n")
    svc = None
    try:
        svc = create(manager, "withfiles",
                     "--secret", "source=s1,target=mysecret,uid=1000,gid=1001,mode=0400",
                     "--config", "source=c1,target=/etc/app.conf",
                     "busybox", "sleep", "1000")
        t, = wait_states(manager, svc, ["running"])
        cid = t["Status"]["ContainerStatus"]["ContainerID"]
        assert worker.out("exec", cid, "cat", "/run/secrets/mysecret") == "top-secret-value"
        assert worker.out("exec", cid, "stat", "-c", "%u %g %a",
                          "/run/secrets/mysecret").strip() == "1000 1001 400"
        assert worker.out("exec", cid, "cat", "/etc/app.conf") == "setting=1\n"
        assert worker.out("exec", cid, "stat", "-c", "%u %g %a",
                          "/etc/app.conf").strip() == "0 0 444"
        # never written under the data root
        r = subprocess.run(["grep", "-rl", "top-secret-value", worker.data_root],
                           capture_output=True, text=True)
        assert r.stdout == ""
        files = Path(worker.exec_root) / "swarm-files"
        assert (files / t["ID"]).exists()
        remove(manager, worker, svc)
        svc = None
        wait_until(lambda: not (files / t["ID"]).exists(), 10, what="the files to go")
    finally:
        if svc:
            remove(manager, worker, svc)
        manager.cli("secret", "rm", "s1", check=False)
        manager.cli("config", "rm", "c1", check=False)


def test_restart_keeps_tasks_and_node_rm_force_stops_them(manager, worker, fresh_daemon,
                                                          monkeypatch):
    monkeypatch.setenv("DOCKER_SERVICE_PREFER_OFFLINE_IMAGE", "1")
    d = fresh_daemon("--live-restore")
    d.cli("swarm", "join", "--token", manager.join_token(), manager.addr)
    nid = json.loads(d.out("info", "--format", "{{json .Swarm.NodeID}}"))
    svc = create(manager, "pinned", "--constraint", f"node.id=={nid}", "busybox",
                 "sleep", "1000")
    # a restart shorter than the grace period (three heartbeats)
    manager.cli("swarm", "update", "--dispatcher-heartbeat", "5s")
    try:
        t, = wait_states(manager, svc, ["running"])
        cid = t["Status"]["ContainerStatus"]["ContainerID"]
        d.restart()
        # the task and its container live on: no second task, no second container
        wait_until(lambda: json.loads(d.out("info", "--format", "{{json .Swarm}}"))
                   ["LocalNodeState"] == "active", 15, what="the node to be back")
        t2, = wait_states(manager, svc, ["running"])
        assert t2["ID"] == t["ID"] and _node_state(manager, nid) == "ready"
        assert d.inspect(cid)["State"]["Running"]
        assert d.out("ps", "-q", "--filter", "label=com.docker.swarm.task").split() \
            == [cid[:12]]
        # removed by the manager: the tasks stop, docker info says why
        manager.cli("node", "rm", "--force", nid)
        wait_until(lambda: not d.inspect(cid)["State"]["Running"], 20,
                   what="the task container to stop")
        assert f"node {nid} was removed from swarm" in json.loads(
            d.out("info", "--format", "{{json .Swarm.Error}}"))
        assert "Node left the swarm." in d.out("swarm", "leave")
        assert d.out("ps", "-aq") == ""
    finally:
        manager.cli("swarm", "update", "--dispatcher-heartbeat", "1s")
        remove(manager, worker, svc, wait=False)
        d.cli("swarm", "leave", check=False)


def test_service_logs(manager, worker):
    svc = create(manager, "talker", "--mode", "replicated-job", "busybox", "sh", "-c",
                 "echo one; echo two >&2; sleep 0.2; echo three")
    follow = None
    try:
        t, = wait_states(manager, svc, ["complete"])
        r = manager.cli("service", "logs", "--raw", svc, timeout=30)
        assert (r.stdout, r.stderr) == ("one\nthree\n", "two\n")
        r = manager.cli("service", "logs", "--raw", "--tail", "1", svc, timeout=30)
        assert (r.stdout, r.stderr) == ("three\n", "")
        r = manager.cli("service", "logs", "--timestamps", "--no-trunc", svc, timeout=30)
        assert "incomplete log stream" not in r.stderr
        lines = r.stdout.splitlines()
        assert len(lines) == 2 and lines[1].endswith("| three")
        assert lines[0][:4].isdigit() and f".{t['ID']}@" in lines[0]
        r = manager.cli("service", "logs", "--raw", "--since", "1h", svc, timeout=30)
        assert (r.stdout, r.stderr) == ("one\nthree\n", "two\n")
        later = (datetime.fromisoformat(t["Status"]["Timestamp"].replace("Z", "+00:00"))
                 + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        r = manager.cli("service", "logs", "--raw", "--since", later, svc, timeout=30)
        assert (r.stdout, r.stderr) == ("", "")
        # a single task
        r = manager.cli("service", "logs", "--raw", "--no-task-ids", t["ID"], timeout=30)
        assert r.stdout == "one\nthree\n"
        # -f: the lines so far, and the command goes on until stopped
        env = dict(os.environ, DOCKER_HOST=f"unix://{manager.socket}")
        follow = subprocess.Popen(["docker", "service", "logs", "-f", "--raw", svc],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  env=env, text=True)
        assert readline(follow) == "one\n"
        assert readline(follow) == "three\n"
        assert follow.poll() is None
    finally:
        if follow is not None:
            follow.kill()
            follow.wait()
        remove(manager, worker, svc, wait=False)


def test_service_logs_details(manager, worker):
    """--details: the attributes the task's log driver recorded (here a container
    label asked for by `--log-opt labels`), before each line."""
    svc = create(manager, "detailed", "--mode", "replicated-job", "--container-label",
                 "team=blue", "--log-driver", "json-file", "--log-opt", "labels=team",
                 "busybox", "echo", "hi")
    try:
        t, = wait_states(manager, svc, ["complete"])
        # raw: the manager's details as they are, its swarm context keys included
        r = manager.cli("service", "logs", "--details", "--raw", svc, timeout=30)
        assert r.stdout == (f"com.docker.swarm.node.id={t['NodeID']},"
                            f"com.docker.swarm.service.id={t['ServiceID']},"
                            f"com.docker.swarm.task.id={t['ID']},team=blue hi\n")
        r = manager.cli("service", "logs", "--details", "--no-task-ids", svc, timeout=30)
        assert r.stdout.endswith("| team=blue hi\n")
        r = manager.cli("service", "logs", "--raw", svc, timeout=30)
        assert r.stdout == "hi\n"
    finally:
        remove(manager, worker, svc, wait=False)


def readline(p: subprocess.Popen, timeout: float = 20) -> str:
    """The process's next output line, or AssertionError after `timeout` (the
    reading thread ends when the caller kills the process)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            return pool.submit(p.stdout.readline).result(timeout)
        except concurrent.futures.TimeoutError:
            p.kill()
            raise AssertionError(f"no output within {timeout} s") from None


def test_followed_service_logs_include_new_tasks(manager, worker):
    svc = create(manager, "growing", "busybox", "sh", "-c", "echo up; exec sleep 1000")
    env = dict(os.environ, DOCKER_HOST=f"unix://{manager.socket}")
    follow = None
    try:
        wait_states(manager, svc, ["running"])
        follow = subprocess.Popen(["docker", "service", "logs", "-f", "--raw", svc],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  env=env, text=True)
        assert readline(follow) == "up\n"
        manager.cli("service", "scale", "--detach", f"{svc}=2")
        assert readline(follow) == "up\n"      # the new task's line
    finally:
        if follow is not None:
            follow.kill()
            follow.wait()
        remove(manager, worker, svc)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_host_mode_port_host_network_and_update(manager, worker):
    port = _free_port()
    web = create(manager, "hostport", "--publish", f"mode=host,target=80,published={port}",
                 "busybox", "sh", "-c", "echo hi > /tmp/i; exec httpd -f -p 80 -h /tmp")
    hostnet = create(manager, "hostnet", "--network", "host", "busybox", "sleep", "1000")
    try:
        t, = wait_states(manager, web, ["running"])
        assert t["Status"]["PortStatus"]["Ports"][0]["PublishedPort"] == port
        assert f"*:{port}->80/tcp" in manager.out("service", "ps", "--format", "{{.Ports}}",
                                                   web)
        body = wait_until(lambda: _get(port), 10, what="the published port to answer")
        assert body == "hi\n"
        h, = wait_states(manager, hostnet, ["running"])
        c = worker.inspect(h["Status"]["ContainerStatus"]["ContainerID"])
        assert c["HostConfig"]["NetworkMode"] == "host"
        # a rolling update (stop-first): the old task is shut down, a new one runs
        manager.cli("service", "update", "--detach", "--env-add", "V=2", hostnet)
        ts = wait_states(manager, hostnet, ["running", "shutdown"])
        new = next(x for x in ts if x["Status"]["State"] == "running")
        assert "V=2" in worker.inspect(new["Status"]["ContainerStatus"]["ContainerID"])[
            "Config"]["Env"]
        assert not worker.inspect(c["Id"])["State"]["Running"]
    finally:
        remove(manager, worker, web)
        remove(manager, worker, hostnet)


def _get(port: int) -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /i HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        return data.split(b"\r\n\r\n", 1)[1].decode()
    except (OSError, IndexError):
        return None


def test_global_service_and_overlay_service_stays_pending(manager, worker):
    glob = create(manager, "everywhere", "--mode", "global", "busybox", "sleep", "1000")
    manager.cli("network", "create", "-d", "overlay", "ov")
    overlay = create(manager, "onoverlay", "--network", "ov", "busybox", "sleep", "1000")
    try:
        t, = wait_states(manager, glob, ["running"])
        c = worker.inspect(t["Status"]["ContainerStatus"]["ContainerID"])
        assert c["Name"] == f"/everywhere.{worker.node_id}.{t['ID']}"
        # pydockerd has no overlay driver: the manager never places the task on it
        t, = wait_states(manager, overlay, ["pending"])
        wait_until(lambda: "missing plugin" in tasks(manager, overlay)[0]["Status"].get(
            "Err", ""), 10, interval=0.3, what="the scheduler's reason")
        assert worker.out("ps", "-aq", "--filter",
                          "label=com.docker.swarm.service.name=onoverlay") == ""
    finally:
        remove(manager, worker, glob)
        manager.cli("service", "rm", overlay, check=False)
        manager.cli("network", "rm", "ov", check=False)


def test_healthcheck_gates_running_and_unhealthy_fails(manager, worker):
    gated = create(manager, "gated", "--health-cmd", "test -f /tmp/ok",
                   "--health-interval", "1s", "--health-retries", "30", "busybox", "sh",
                   "-c", "sleep 3; touch /tmp/ok; exec sleep 1000")
    sick = create(manager, "sick", "--restart-condition", "none", "--health-cmd", "false",
                  "--health-interval", "1s", "--health-retries", "1", "busybox",
                  "sleep", "1000")
    try:
        t, = wait_states(manager, gated, ["starting"])
        cid = t["Status"]["ContainerStatus"]["ContainerID"]
        c = wait_until(lambda: (x := worker.inspect(cid))["State"]["Running"] and x, 10,
                       what="the container to run")
        assert c["State"]["Health"]["Status"] == "starting"
        # running but not healthy yet: the task is still Starting
        assert tasks(manager, gated)[0]["Status"]["State"] == "starting"
        wait_states(manager, gated, ["running"])
        assert worker.inspect(c["Id"])["State"]["Health"]["Status"] == "healthy"
        t, = wait_states(manager, sick, ["failed"])
        assert t["Status"]["Err"] == "unhealthy container"
    finally:
        remove(manager, worker, gated)
        remove(manager, worker, sick)


def test_back_after_the_grace_period_stops_replaced_tasks(manager, worker, fresh_daemon,
                                                          monkeypatch):
    monkeypatch.setenv("DOCKER_SERVICE_PREFER_OFFLINE_IMAGE", "1")
    d = fresh_daemon("--live-restore")
    d.cli("swarm", "join", "--token", manager.join_token(), manager.addr)
    nid = json.loads(d.out("info", "--format", "{{json .Swarm.NodeID}}"))
    svc = create(manager, "away", "--constraint", f"node.id=={nid}", "busybox",
                 "sleep", "1000")
    try:
        t, = wait_states(manager, svc, ["running"])
        cid = t["Status"]["ContainerStatus"]["ContainerID"]
        d.stop()            # live-restore: the container runs on while pydockerd is away
        wait_until(lambda: _node_state(manager, nid) == "down", 20, what="the node down")
        d.start()
        # the manager replaced the task: the old container stops, a new task runs,
        # never two containers running for the service at once once it settles
        ts = wait_states(manager, svc, ["running", "shutdown"], timeout=40)
        assert next(x for x in ts if x["ID"] == t["ID"])["Status"]["State"] == "shutdown"
        assert not d.inspect(cid)["State"]["Running"]
        assert len(d.out("ps", "-q", "--filter", "label=com.docker.swarm.task").split()) == 1
    finally:
        remove(manager, worker, svc, wait=False)
        d.cli("swarm", "leave", check=False)
        wait_until(lambda: _node_state(manager, nid) == "down", 20, what="the node down")
        manager.cli("node", "rm", nid, check=False)


def test_start_first_update_and_rollback_through_the_sdk(manager, worker):
    """The Docker SDK's swarm API on the manager: a start-first rolling update runs
    the new task's container before the old one stops; a rollback brings back the
    previous spec, in a new container on pydockerd."""
    import docker
    from docker.types import EndpointSpec, UpdateConfig
    client = docker.DockerClient(base_url=f"unix://{manager.socket}", timeout=60)
    svc = client.services.create(
        "busybox", ["sleep", "1000"], name="startfirst", env=["V=1"],
        stop_grace_period=10 ** 9, update_config=UpdateConfig(order="start-first"),
        endpoint_spec=EndpointSpec(mode="vip"))
    try:
        old, = wait_states(manager, "startfirst", ["running"])
        svc.reload()
        svc.update(env=["V=2"])
        ts = wait_states(manager, "startfirst", ["running", "shutdown"])
        new = next(t for t in ts if t["Status"]["State"] == "running")
        new_c = worker.inspect(new["Status"]["ContainerStatus"]["ContainerID"])
        old_c = worker.inspect(old["Status"]["ContainerStatus"]["ContainerID"])
        assert "V=2" in new_c["Config"]["Env"]
        assert not old_c["State"]["Running"]
        # start-first: the new container was running before the old one stopped
        assert new_c["State"]["StartedAt"] < old_c["State"]["FinishedAt"]
        manager.cli("service", "rollback", "--detach", "startfirst")
        ts = wait_states(manager, "startfirst", ["running", "shutdown", "shutdown"])
        back = next(t for t in ts if t["Status"]["State"] == "running")
        env = worker.inspect(back["Status"]["ContainerStatus"]["ContainerID"])["Config"]["Env"]
        assert "V=1" in env and "V=2" not in env
        assert client.services.get("startfirst").attrs["Spec"]["TaskTemplate"][
            "ContainerSpec"]["Env"] == ["V=1"]
    finally:
        client.close()
        remove(manager, worker, "startfirst")


def test_token_rotation_leave_and_rejoin(manager, worker, fresh_daemon, monkeypatch):
    """`join-token --rotate worker` does not disturb a joined node (nor its restart
    with the stored identity, live-restore keeping the task's container); after a leave, joining again gives a new node ID and
    the global service's task comes back; a global job completes on it."""
    monkeypatch.setenv("DOCKER_SERVICE_PREFER_OFFLINE_IMAGE", "1")
    d = fresh_daemon("--live-restore", "--label", "rejoin=yes")
    d.cli("swarm", "join", "--token", manager.join_token(), manager.addr)
    nid = json.loads(d.out("info", "--format", "{{json .Swarm.NodeID}}"))
    svc = create(manager, "mine", "--mode", "global", "--constraint",
                 "engine.labels.rejoin==yes", "busybox", "sleep", "1000")
    new_nid = ""
    try:
        t, = wait_states(manager, svc, ["running"])
        assert t["NodeID"] == nid
        manager.cli("swarm", "join-token", "--rotate", "-q", "worker")
        d.restart()
        wait_until(lambda: json.loads(d.out("info", "--format", "{{json .Swarm}}"))
                   ["LocalNodeState"] == "active", 15, what="the node to be back")
        assert wait_states(manager, svc, ["running"])[0]["ID"] == t["ID"]
        assert _node_state(manager, nid) == "ready"
        assert "Node left the swarm." in d.out("swarm", "leave")
        assert d.out("ps", "-aq") == ""
        wait_until(lambda: _node_state(manager, nid) == "down", 20, what="the node down")
        manager.cli("node", "rm", nid)
        d.cli("swarm", "join", "--token", manager.join_token(), manager.addr)
        new_nid = json.loads(d.out("info", "--format", "{{json .Swarm.NodeID}}"))
        assert new_nid and new_nid != nid
        wait_until(lambda: [x for x in tasks(manager, svc) if x["NodeID"] == new_nid
                            and x["Status"]["State"] == "running"], 30, interval=0.3,
                   what="the global task on the rejoined node")
        job = create(manager, "gjob", "--mode", "global-job", "--constraint",
                     "engine.labels.rejoin==yes", "busybox", "true")
        j, = wait_states(manager, job, ["complete"])
        assert j["NodeID"] == new_nid
    finally:
        remove(manager, worker, svc, wait=False)
        manager.cli("service", "rm", "gjob", check=False)
        d.cli("swarm", "leave", check=False)
        for n in (nid, new_nid):
            if n:
                manager.cli("node", "rm", "--force", n, check=False)
