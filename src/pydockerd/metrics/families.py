"""The Prometheus metric families, under dockerd 20.10's names, help texts, labels
and buckets (moby daemon/metrics.go, daemon/events/metrics.go,
builder/dockerfile/metrics.go), in a registry of their own (not
prometheus_client's global one).

Counters and histograms are updated by the services through the Protocols of
instruments.py; what is a count of current things (containers by state, event
subscribers) or a fact of the engine is read at scrape time.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Protocol

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..instruments import Instruments

# Go's prometheus.DefBuckets (prometheus_client's default has three more)
BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0, float("inf"))

# the actions dockerd makes a series for at start (it also observes a 0 for each;
# these start with a count of 0 instead: a scrape counts only real actions)
CONTAINER_ACTIONS = ("start", "changes", "commit", "create", "delete")
BUILD_FAILURE_REASONS = (
    "dockerfile_syntax_error", "dockerfile_empty_error", "command_not_supported_error",
    "error_processing_commands_error", "build_target_not_reachable_error",
    "missing_onbuild_arguments_error", "unknown_instruction_error", "build_canceled")
ENGINE_INFO_LABELS = ("version", "commit", "architecture", "graphdriver", "kernel", "os",
                      "os_type", "os_version", "daemon_id")

# Go's client emits no `<name>_created` series: neither do we (process-wide switch;
# this registry is the process's only one)
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]


class ActionHistogram:
    """An ActionTimer: a histogram of seconds by `action`."""

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram

    def observe(self, action: str, seconds: float) -> None:
        self._histogram.labels(action).observe(seconds)


class HealthCheckCounters:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._total = Counter("engine_daemon_health_checks",
                              "The total number of health checks", registry=registry)
        self._failed = Counter("engine_daemon_health_checks_failed",
                               "The total number of failed health checks", registry=registry)

    def checked(self, failed: bool) -> None:
        self._total.inc()
        if failed:
            self._failed.inc()


class BuildCounterFamilies:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._triggered = Counter("builder_builds_triggered", "Number of triggered image builds",
                                  registry=registry)
        self._failed = Counter("builder_builds_failed", "Number of failed image builds",
                               ["reason"], registry=registry)
        for reason in BUILD_FAILURE_REASONS:
            self._failed.labels(reason)

    def triggered(self) -> None:
        self._triggered.inc()

    def failed(self, reason: str) -> None:
        self._failed.labels(reason).inc()


class Families:
    """The registry and the instruments the services report to (built before them)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        containers = Histogram(
            "engine_daemon_container_actions_seconds",
            "The number of seconds it takes to process each container action",
            ["action"], buckets=BUCKETS, registry=r)
        for action in CONTAINER_ACTIONS:
            containers.labels(action)
        networks = Histogram(
            "engine_daemon_network_actions_seconds",
            "The number of seconds it takes to process each network action",
            ["action"], buckets=BUCKETS, registry=r)
        self.instruments = Instruments(
            container_actions=ActionHistogram(containers),
            network_actions=ActionHistogram(networks),
            health_checks=HealthCheckCounters(r), builds=BuildCounterFamilies(r))
        # what dockerd's Go client adds: process_* (here also python_gc_*, python_info)
        prometheus_client.ProcessCollector(registry=r)
        prometheus_client.PlatformCollector(registry=r)
        prometheus_client.GCCollector(registry=r)


class ContainerCounts(Protocol):
    """How many containers are in each status (kept by the registry: no walk)."""

    def state_counts(self) -> dict[str, int]: ...


class EventCounts(Protocol):
    @property
    def published(self) -> int: ...
    @property
    def subscribers(self) -> int: ...


def state_of(status: str) -> str:
    """dockerd's stateCounter: paused, running, or stopped (every other status)."""
    return status if status in ("running", "paused") else "stopped"


class ScrapeTimeCollector(Collector):
    """Families read when scraped: containers by state, events, the engine's facts."""

    def __init__(self, containers: ContainerCounts, events: EventCounts,
                 engine_info: dict[str, str], ncpu: int, mem_total: int) -> None:
        self._containers = containers
        self._events = events
        self._engine_info = engine_info
        self._ncpu = ncpu
        self._mem_total = mem_total

    def collect(self) -> Iterable[Metric]:
        return list(self._collect())

    def _collect(self) -> Iterator[Metric]:
        counts = {"running": 0, "paused": 0, "stopped": 0}
        for status, n in self._containers.state_counts().items():
            counts[state_of(status)] += n
        states = GaugeMetricFamily("engine_daemon_container_states_containers",
                                   "The count of containers in various states",
                                   labels=["state"])
        for state in ("running", "paused", "stopped"):
            states.add_metric([state], counts[state])
        yield states
        yield CounterMetricFamily("engine_daemon_events", "The number of events logged",
                                  value=self._events.published)
        yield GaugeMetricFamily("engine_daemon_events_subscribers_total",
                                "The number of current subscribers to events",
                                value=self._events.subscribers)
        info = self._engine_info
        engine = GaugeMetricFamily(
            "engine_daemon_engine_info",
            "The information related to the engine and the OS it is running on",
            labels=list(ENGINE_INFO_LABELS))
        engine.add_metric([info.get(k, "") for k in ENGINE_INFO_LABELS], 1)
        yield engine
        yield GaugeMetricFamily("engine_daemon_engine_cpus_cpus",
                                "The number of cpus that the host system of the engine has",
                                value=self._ncpu)
        yield GaugeMetricFamily(
            "engine_daemon_engine_memory_bytes",
            "The number of bytes of memory that the host system of the engine has",
            value=self._mem_total)


__all__ = ["Families", "ScrapeTimeCollector", "BUCKETS", "CONTAINER_ACTIONS",
           "BUILD_FAILURE_REASONS", "state_of"]
