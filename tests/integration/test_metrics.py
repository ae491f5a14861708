"""--metrics-addr: a daemon serves Prometheus metrics under dockerd's names, and
the values follow what the docker CLI did (scraped over HTTP, parsed with
prometheus_client's text parser, compared before and after each step)."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import DOCKER
from polling import wait_until

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def actions(samples: Samples, kind: str, action: str) -> float:
    """How many times `action` was timed (engine_daemon_<kind>_actions_seconds)."""
    return value(samples, f"engine_daemon_{kind}_actions_seconds_count", action=action)


def test_metrics_follow_the_engine(fresh_daemon, tmp_path: Path) -> None:
    port = _free_port()
    d = fresh_daemon("--metrics-addr", f"127.0.0.1:{port}")
    s0 = scrape(port)
    info = [k for k in s0 if k[0] == "engine_daemon_engine_info"]
    assert len(info) == 1 and s0[info[0]] == 1
    labels = dict(info[0][1])
    assert set(labels) == {"architecture", "commit", "daemon_id", "graphdriver", "kernel",
                           "os", "os_type", "os_version", "version"}
    assert labels["daemon_id"] == d.out("info", "--format", "{{.ID}}").strip()
    assert labels["version"] == d.out("version", "--format", "{{.Server.Version}}").strip()
    assert value(s0, "process_resident_memory_bytes") > 1 << 20
    assert value(s0, "process_open_fds") > 3

    # container verbs: create, start (a sandbox, an endpoint), stop (released), diff,
    # commit, rm
    d.cli("create", "--name", "m-a", "busybox", "sleep", "300")
    d.cli("start", "m-a")
    d.cli("stop", "-t", "1", "m-a")
    d.cli("diff", "m-a")
    image = d.out("commit", "m-a").strip()
    d.cli("rm", "m-a")
    d.cli("rmi", image)
    s1 = scrape(port)
    for action in ("create", "start", "changes", "commit", "delete"):
        assert actions(s1, "container", action) - actions(s0, "container", action) == 1, action
    for action in ("allocate", "connect", "release"):
        assert actions(s1, "network", action) - actions(s0, "network", action) == 1, action
    assert value(s1, "engine_daemon_container_actions_seconds_sum", action="start") > 0
    assert value(s1, "engine_daemon_container_actions_seconds_bucket", action="start",
                 le="+Inf") == actions(s1, "container", "start")

    # a user-defined network: the run joins it (one more endpoint)
    d.cli("network", "create", "m-net")
    try:
        d.cli("run", "--rm", "--network", "m-net", "busybox", "true")
    finally:
        d.cli("network", "rm", "m-net", check=False)
    s2 = scrape(port)
    assert actions(s2, "network", "connect") - actions(s1, "network", "connect") == 1
    assert actions(s2, "container", "delete") - actions(s1, "container", "delete") == 1

    # health checks: one passing, one whose probe times out (dockerd's "failed": the
    # probe gave no result; a non-zero exit code is a completed check)
    d.cli("run", "-d", "--name", "m-ok", "--health-cmd", "true", "--health-interval", "1s",
          "busybox", "sleep", "300")
    d.cli("run", "-d", "--name", "m-exit1", "--health-cmd", "false",
          "--health-interval", "1s", "busybox", "sleep", "300")
    d.cli("run", "-d", "--name", "m-slow", "--health-cmd", "sleep 10",
          "--health-interval", "1s", "--health-timeout", "1s", "busybox", "sleep", "300")

    def logs(name: str) -> list[dict]:
        return (d.inspect(name)["State"].get("Health") or {}).get("Log") or []
    wait_until(lambda: all(logs(n) for n in ("m-ok", "m-exit1", "m-slow")), timeout=30,
               what="a health check result for every container")
    d.cli("stop", "-t", "0", "m-ok", "m-exit1", "m-slow")     # no probe runs after this
    results = [entry["ExitCode"] for n in ("m-ok", "m-exit1", "m-slow") for entry in logs(n)]
    s3 = scrape(port)
    assert delta(s2, s3, "engine_daemon_health_checks_total") == len(results)
    assert delta(s2, s3, "engine_daemon_health_checks_failed_total") == results.count(-1) >= 1
    assert 1 in results and 0 in results            # completed checks, not failed ones

    # builds: one that succeeds (its RUN step is a create/start/delete), one with an
    # unknown instruction
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    (good / "Dockerfile").write_text("FROM busybox\nRUN true\n")
    (bad / "Dockerfile").write_text("FROM busybox\nRUNN true\n")
    built = d.out("build", "-q", str(good)).strip()
    assert d.cli("build", "-q", str(bad), check=False).returncode != 0
    s4 = scrape(port)
    assert delta(s3, s4, "builder_builds_triggered_total") == 2
    assert delta(s3, s4, "builder_builds_failed_total", reason="unknown_instruction_error") == 1
    assert value(s4, "builder_builds_failed_total", reason="build_canceled") == 0
    assert actions(s4, "container", "create") - actions(s3, "container", "create") == 1
    d.cli("rmi", built)

    # containers by state
    d.cli("start", "m-ok")
    d.cli("pause", "m-ok")
    d.cli("start", "m-exit1")
    s5 = scrape(port)
    state = "engine_daemon_container_states_containers"
    assert value(s5, state, state="paused") == 1
    assert value(s5, state, state="running") == 1
    assert value(s5, state, state="stopped") == 1          # m-slow
    d.cli("unpause", "m-ok")
    d.cli("rm", "-f", "m-ok", "m-exit1", "m-slow")

    # events: every event the bus logged, and the streams listening
    until = str(int(time.time()) + 1)
    s6 = scrape(port)
    seen = d.out("events", "--since", "0", "--until", until, "--format", "{{.Type}}")
    assert value(s6, "engine_daemon_events_total") == len(seen.split()) > 20
    assert value(s6, "engine_daemon_events_subscribers_total") == 0
    env = {"DOCKER_HOST": d.host, "DOCKER_CONFIG": str(d.base / "cli"), "PATH": "/usr/bin:/bin"}
    listener = subprocess.Popen([DOCKER, "events"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: value(scrape(port), "engine_daemon_events_subscribers_total") == 1,
                   what="one events subscriber")
    finally:
        listener.terminate()
        listener.wait(10)
    # the daemon notices the gone client when the next event is written to it
    # (dockerd notices at once)
    d.cli("volume", "create", "m-vol")
    d.cli("volume", "rm", "m-vol")
    wait_until(lambda: value(scrape(port), "engine_daemon_events_subscribers_total") == 0,
               what="no events subscriber")

    # only /metrics is served
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
    assert e.value.code == 404


def test_metrics_port_in_use_stops_the_start(fresh_daemon) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(RuntimeError, match="metrics API: listen tcp 127.0.0.1:"):
            fresh_daemon("--metrics-addr", f"127.0.0.1:{port}")


@pytest.mark.skipif(PROMETHEUS is None or PROMTOOL is None,
                    reason="prometheus missing (install.sh installs Debian's package)")
def test_a_prometheus_server_scrapes_the_daemon(fresh_daemon, tmp_path: Path) -> None:
    port, web = _free_port(), _free_port()
    d = fresh_daemon("--metrics-addr", f"127.0.0.1:{port}")
    d.cli("run", "--rm", "busybox", "true")
    # promtool's lint: the only remark is about a name dockerd has (a gauge named _total)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read()
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                          timeout=60)
    remarks = (lint.stdout + lint.stderr).decode().strip().splitlines()
    assert remarks == ['engine_daemon_events_subscribers_total non-counter metrics should '
                       'not have "_total" suffix'], remarks
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({   # YAML is a superset of JSON
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": "pydockerd",
                            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]}))
    server = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{web}"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "wb"))

    def query(q: str) -> list[dict]:
        url = f"http://127.0.0.1:{web}/api/v1/query?" + urllib.parse.urlencode({"query": q})
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return list(json.load(r)["data"]["result"])
        except (urllib.error.URLError, ConnectionError):
            return []
    try:
        up = wait_until(lambda: query('up{job="pydockerd"} == 1'), timeout=60,
                        interval=0.5, what="prometheus scraping the daemon")
        assert up[0]["metric"]["instance"] == f"127.0.0.1:{port}"
        info = wait_until(lambda: query("engine_daemon_engine_info"), timeout=30,
                          interval=0.5, what="engine_daemon_engine_info in prometheus")
        assert info[0]["metric"]["daemon_id"] == d.out("info", "--format", "{{.ID}}").strip()
        starts = query('engine_daemon_container_actions_seconds_count{action="start"}')
        assert float(starts[0]["value"][1]) == 1
        quantile = query("histogram_quantile(0.5, engine_daemon_container_actions_seconds_bucket"
                         '{action="start"})')
        assert 0 < float(quantile[0]["value"][1]) <= 10
    finally:
        server.terminate()
        server.wait(30)
