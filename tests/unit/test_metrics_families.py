"""The Prometheus families (metrics/) under dockerd 20.10's names, and what the
services report through instruments.py. Neither root nor a daemon needed."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pydockerd.builder.parser import parse
from pydockerd.builder.service import Build
from pydockerd.cli import parse_config
from pydockerd.config import JSON_KEYS, split_host_port
from pydockerd.containers.health import HealthMonitor
from pydockerd.containers.model import Container
from pydockerd.containers.paths import Paths
from pydockerd.containers.state import State
from pydockerd.errors import DockerError, InvalidParameter
from pydockerd.events import EventBus
from pydockerd.instruments import NO_TIMER, Instruments, timed
from pydockerd.metrics.families import BUCKETS, Families, ScrapeTimeCollector
from pydockerd.metrics.server import engine_labels, is_loopback, routes
from pydockerd.models.build import BuildOptions

SRC = Path(__file__).resolve().parents[2] / "src"

# dockerd 20.10's HELP lines (scraped from a real dockerd 20.10.24 --metrics-addr)
DOCKERD_HELP = {
    "builder_builds_failed": "Number of failed image builds",
    "builder_builds_triggered": "Number of triggered image builds",
    "engine_daemon_container_actions_seconds":
        "The number of seconds it takes to process each container action",
    "engine_daemon_container_states_containers": "The count of containers in various states",
    "engine_daemon_engine_cpus_cpus": "The number of cpus that the host system of the engine has",
    "engine_daemon_engine_info":
        "The information related to the engine and the OS it is running on",
    "engine_daemon_engine_memory_bytes":
        "The number of bytes of memory that the host system of the engine has",
    "engine_daemon_events_subscribers_total": "The number of current subscribers to events",
    "engine_daemon_events": "The number of events logged",
    "engine_daemon_health_checks_failed": "The total number of failed health checks",
    "engine_daemon_health_checks": "The total number of health checks",
    "engine_daemon_network_actions_seconds":
        "The number of seconds it takes to process each network action",
}
ENGINE = {"version": "28.0.0-pydockerd", "commit": "pydockerd", "architecture": "x86_64",
          "graphdriver": "overlay2", "kernel": "6.1", "os": "Debian GNU/Linux 12 (bookworm)",
          "os_type": "linux", "os_version": "12", "daemon_id": "d-1"}


def _container(n: int, status: str) -> Container:
    return Container(id=f"{n:x}" * 64, name=f"c{n}", created="2026-01-01T00:00:00Z",
                     image="busybox", image_id="sha256:" + "b" * 64, config={},
                     host_config={}, state=State(status=status))


def _families(containers: list[Container] | None = None,
              events: EventBus | None = None) -> Families:
    f = Families()
    counts = Counter(c.state.status for c in containers or [])
    f.registry.register(ScrapeTimeCollector(
        SimpleNamespace(state_counts=lambda: dict(counts)), events or EventBus(), ENGINE,
        2, 1 << 30))
    return f


def _scrape(f: Families) -> dict[str, object]:
    text = generate_latest(f.registry).decode()
    return {m.name: m for m in text_string_to_metric_families(text)}


def _value(families: dict[str, object], sample: str, **labels: str) -> float:
    for fam in families.values():
        for s in fam.samples:  # type: ignore[attr-defined]
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise KeyError(f"{sample} {labels}")


def test_names_help_and_types_are_dockerds() -> None:
    fams = _scrape(_families())
    for name, help_text in DOCKERD_HELP.items():
        assert name in fams, name
        assert fams[name].documentation == help_text  # type: ignore[attr-defined]
    types = {n: fams[n].type for n in DOCKERD_HELP}  # type: ignore[attr-defined]
    assert types["engine_daemon_container_actions_seconds"] == "histogram"
    assert types["engine_daemon_network_actions_seconds"] == "histogram"
    assert types["engine_daemon_events"] == "counter"
    assert types["engine_daemon_events_subscribers_total"] == "gauge"
    assert types["builder_builds_failed"] == "counter"
    # process metrics as the Go client's, no `_created` series (Go has none)
    for name in ("process_resident_memory_bytes", "process_cpu_seconds",
                 "process_open_fds", "process_start_time_seconds"):
        assert name in fams, name
    text = generate_latest(_families().registry).decode()
    assert "_created" not in text


def test_action_histograms_use_gos_default_buckets() -> None:
    f = _families()
    f.instruments.container_actions.observe("start", 0.3)
    f.instruments.container_actions.observe("start", 20)
    f.instruments.network_actions.observe("allocate", 0.001)
    fams = _scrape(f)
    les = [s.labels["le"] for s in fams["engine_daemon_container_actions_seconds"].samples
           if s.name.endswith("_bucket") and s.labels["action"] == "start"]
    assert [float(x) for x in les] == list(BUCKETS)
    assert _value(fams, "engine_daemon_container_actions_seconds_count", action="start") == 2
    assert _value(fams, "engine_daemon_container_actions_seconds_bucket", action="start",
                  le="0.5") == 1
    assert _value(fams, "engine_daemon_network_actions_seconds_count", action="allocate") == 1
    # dockerd's actions have a series from the start, counting only real actions
    for action in ("changes", "commit", "create", "delete"):
        assert _value(fams, "engine_daemon_container_actions_seconds_count",
                      action=action) == 0


def test_health_and_build_counters() -> None:
    f = _families()
    f.instruments.health_checks.checked(failed=False)
    f.instruments.health_checks.checked(failed=True)
    f.instruments.builds.triggered()
    f.instruments.builds.failed("unknown_instruction_error")
    fams = _scrape(f)
    assert _value(fams, "engine_daemon_health_checks_total") == 2
    assert _value(fams, "engine_daemon_health_checks_failed_total") == 1
    assert _value(fams, "builder_builds_triggered_total") == 1
    assert _value(fams, "builder_builds_failed_total", reason="unknown_instruction_error") == 1
    # every reason dockerd declares has a series from the start
    reasons = {s.labels["reason"] for s in fams["builder_builds_failed"].samples}
    assert reasons == {"dockerfile_syntax_error", "dockerfile_empty_error",
                       "command_not_supported_error", "error_processing_commands_error",
                       "build_target_not_reachable_error", "missing_onbuild_arguments_error",
                       "unknown_instruction_error", "build_canceled"}


def test_scrape_time_families_read_the_registry_and_the_event_bus() -> None:
    containers = [_container(1, "running"), _container(2, "paused"), _container(3, "exited"),
                  _container(4, "created"), _container(5, "restarting"),
                  _container(6, "running")]
    bus = EventBus()
    q = bus.subscribe()
    for i in range(3):
        bus.publish("container", "create", str(i))
    fams = _scrape(_families(containers, bus))
    state = "engine_daemon_container_states_containers"
    assert _value(fams, state, state="running") == 2
    assert _value(fams, state, state="paused") == 1
    assert _value(fams, state, state="stopped") == 3     # exited, created, restarting
    assert _value(fams, "engine_daemon_events_total") == 3
    assert _value(fams, "engine_daemon_events_subscribers_total") == 1
    bus.unsubscribe(q)
    assert _value(_scrape(_families(containers, bus)),
                  "engine_daemon_events_subscribers_total") == 0
    info = fams["engine_daemon_engine_info"].samples[0]
    assert info.labels == ENGINE and info.value == 1
    assert _value(fams, "engine_daemon_engine_cpus_cpus") == 2
    assert _value(fams, "engine_daemon_engine_memory_bytes") == 1 << 30


def test_engine_labels_from_version_and_info() -> None:
    info = SimpleNamespace(architecture="x86_64", driver="overlay2", kernel_version="6.1",
                           operating_system="Debian", os_version="12", id="d-1")
    labels = engine_labels(info, SimpleNamespace(version="28.0.0", git_commit="abc"))  # type: ignore[arg-type]
    assert labels == {"version": "28.0.0", "commit": "abc", "architecture": "x86_64",
                      "graphdriver": "overlay2", "kernel": "6.1", "os": "Debian",
                      "os_type": "linux", "os_version": "12", "daemon_id": "d-1"}


def test_route_answers_the_text_format() -> None:
    f = _families()
    (route,) = routes(f)
    assert (route.method, route.pattern) == ("GET", "/metrics")
    resp = asyncio.run(route.handler(None))  # type: ignore[arg-type]
    assert resp.status == 200
    assert resp.content_type.startswith("text/plain; version=0.0.4")
    assert b"# HELP engine_daemon_engine_info" in resp.body


def test_timed_observes_only_success() -> None:
    seen: list[tuple[str, float]] = []
    timer = SimpleNamespace(observe=lambda a, s: seen.append((a, s)))
    with timed(timer, "create"):
        pass
    with pytest.raises(RuntimeError):
        with timed(timer, "start"):
            raise RuntimeError("failed start")
    assert [a for a, _ in seen] == ["create"] and seen[0][1] >= 0
    NO_TIMER.observe("x", 1.0)                 # the default does nothing
    Instruments().builds.failed("build_canceled")


def test_health_probe_that_cannot_run_counts_failed(tmp_path: Path) -> None:
    checks: list[bool] = []
    mon = HealthMonitor(SimpleNamespace(), Paths(str(tmp_path / "d"), str(tmp_path / "e")),
                        SimpleNamespace(), SimpleNamespace(checked=lambda failed: checks.append(failed)))
    c = _container(1, "running")
    result = asyncio.run(mon._probe(c, ["true"], 1.0))  # no bundle: exec cannot start
    assert result["ExitCode"] == -1
    assert checks == [True]


def _plan(dockerfile: str, counted: list[str], **opts: object) -> None:
    instructions, escape = parse(dockerfile)
    svc = SimpleNamespace(images=None, containers=None, committer=None,
                          counters=SimpleNamespace(failed=counted.append))
    Build(svc, "/nonexistent", "/nonexistent", instructions, escape,  # type: ignore[arg-type]
          BuildOptions(**opts))._plan()


@pytest.mark.parametrize("dockerfile,opts,reason", [
    ("FROMM busybox\n", {}, "unknown_instruction_error"),
    ("FROM busybox\nRUNN true\n", {}, "unknown_instruction_error"),
    ("FROM busybox AS a\n", {"target": "b"}, "build_target_not_reachable_error"),
    ("ARG x=1\n", {}, "dockerfile_empty_error"),
])
def test_build_failures_counted_by_dockerds_reason(dockerfile: str, opts: dict[str, object],
                                                   reason: str) -> None:
    counted: list[str] = []
    with pytest.raises(InvalidParameter):
        _plan(dockerfile, counted, **opts)
    assert counted == [reason]


def test_build_error_without_a_dockerd_reason_is_not_counted() -> None:
    counted: list[str] = []
    with pytest.raises(InvalidParameter):
        _plan("RUN true\n", counted)           # no FROM: dockerd has no label for it
    assert counted == []
    _plan("FROM busybox\nRUN true\n", counted)
    assert counted == []


def test_metrics_addr_flag_and_daemon_json(tmp_path: Path) -> None:
    assert JSON_KEYS["metrics-addr"] == "metrics_addr"
    cfg, _ = parse_config(["--metrics-addr", "127.0.0.1:9323",
                           "--config-file", str(tmp_path / "none.json")])
    assert cfg.metrics_addr == "127.0.0.1:9323"
    conf = tmp_path / "daemon.json"
    conf.write_text('{"metrics-addr": "[::1]:9323"}')
    cfg, _ = parse_config(["--config-file", str(conf)])
    assert cfg.metrics_addr == "[::1]:9323"
    with pytest.raises(DockerError, match="both as a flag and in the configuration file"):
        parse_config(["--metrics-addr", ":1", "--config-file", str(conf)])
    for bad in ("9323", "127.0.0.1:x", "::1:9323", "1.2.3.4:70000"):
        with pytest.raises(InvalidParameter):
            parse_config(["--metrics-addr", bad, "--config-file", str(tmp_path / "n.json")])


def test_split_host_port_and_loopback() -> None:
    assert split_host_port("127.0.0.1:9323") == ("127.0.0.1", 9323)
    assert split_host_port(":9323") == ("", 9323)
    assert split_host_port("[::1]:1") == ("::1", 1)
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("") and not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")


def test_daemon_loads_prometheus_client_only_when_asked() -> None:
    """Idle memory: without --metrics-addr the daemon never imports prometheus_client."""
    code = ("import sys, pydockerd.daemon, pydockerd.cli; "
            "assert 'prometheus_client' not in sys.modules, 'imported'; "
            "assert 'pydockerd.metrics' not in sys.modules, 'metrics imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
