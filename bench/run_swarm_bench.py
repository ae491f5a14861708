#!/usr/bin/env python3
"""Swarm benchmark: pydockerd as a worker next to the manager's own Moby node.

    python3 bench/run_swarm_bench.py [--runs 3] [--replicas 20]

One private Moby manager (tests/integration/moby_manager.py: Debian's docker.io
unpacked under build/moby, its own roots and socket, one at a time under the
host-wide lock) and one pydockerd joined to it as a worker. Side by side on the
same manager, tasks constrained by node ID:
  - seconds from `docker service create --detach` to the task `Running`,
    one task placed on the manager's own node versus on pydockerd;
  - seconds until N replicas are all `Running`, on each node;
  - pydockerd's resident memory before joining and with the agent active.
Services use `--network host` (the manager runs with --bridge=none) and the
offline test busybox, loaded into both daemons. Everything is torn down in a
finally block. Results: a table on stdout and bench/results-swarm-latest.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))
import run_bench as rb  # noqa: E402
from moby_manager import ManagerLock, MobyManager, new_manager  # noqa: E402
from run_bench import PyDockerd, log  # noqa: E402


def running(m: MobyManager, svc: str) -> int:
    states = m.cli("service", "ps", "--filter", "desired-state=running", "--format",
                   "{{.CurrentState}}", svc, check=False).stdout.split("\n")
    return sum(1 for s in states if s.startswith("Running"))


def time_to_running(m: MobyManager, node_id: str, replicas: int, name: str) -> float:
    began = time.monotonic()
    m.cli("service", "create", "--detach", "--no-resolve-image", "--name", name,
          "--network", "host", "--stop-grace-period", "1s", "--replicas", str(replicas),
          "--constraint", f"node.id=={node_id}", "busybox", "sleep", "1000")
    deadline = began + 300
    while running(m, name) < replicas:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: {replicas} replicas not running within 300 s")
        time.sleep(0.05)
    took = time.monotonic() - began
    m.cli("service", "rm", name, check=False)
    return took


def wait_no_tasks(engines: list, label: str = "com.docker.swarm.task") -> None:
    deadline = time.monotonic() + 60
    for cli in engines:
        while cli("ps", "-aq", "--filter", f"label={label}").stdout.strip():
            if time.monotonic() > deadline:
                return
            time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--replicas", type=int, default=20)
    a = ap.parse_args()
    subnet, = rb.free_subnets(1)
    pyd = PyDockerd("pydockerd", Path("/tmp/bench-swarm-pydockerd"), "benchspyd0", subnet)
    results: dict = {"runs": a.runs, "replicas": a.replicas}
    os.environ["DOCKER_SERVICE_PREFER_OFFLINE_IMAGE"] = "1"     # the loaded image, no pull
    watched = rb.watch_host_paths()
    with ManagerLock():
        m = new_manager()
        try:
            m.start()
            m.cli("node", "update", "--availability", "active", m.node_id)
            pyd.start()
            with tempfile.TemporaryDirectory() as tmp:
                tar = Path(tmp) / "busybox.tar"
                rb.build_test_image("busybox", tar)
                pyd.must("load", "-i", str(tar))
                m.cli("load", "-i", str(tar))
            time.sleep(2)
            rss_idle = pyd.memory()["groups"]["pydockerd"]["rss_kib"]
            pyd.must("swarm", "join", "--token", m.join_token(), m.addr)
            pyd_node = json.loads(pyd.must("info", "--format", "{{json .Swarm.NodeID}}"))
            time.sleep(2)
            rss_swarm = pyd.memory()["groups"]["pydockerd"]["rss_kib"]
            results["rss_kib"] = {"outside_swarm": rss_idle, "agent_active": rss_swarm}
            nodes = {"moby": m.node_id, "pydockerd": pyd_node}
            clis = [pyd.cli, lambda *args: m.cli(*args, check=False)]
            for what, replicas in (("one_task_s", 1), ("replicas_s", a.replicas)):
                samples: dict[str, list[float]] = {k: [] for k in nodes}
                for i in range(a.runs):
                    for k, nid in nodes.items():     # interleaved
                        samples[k].append(time_to_running(m, nid, replicas, f"b{k[0]}{i}"))
                        wait_no_tasks(clis)
                results[what] = {k: {"median": statistics.median(v), "samples": v}
                                 for k, v in samples.items()}
                log(f"{what}: {results[what]}")
            pyd.cli("swarm", "leave")
        finally:
            rb.teardown([pyd], watched)
            left = m.stop()
            if left:
                log(f"the manager left {left} behind (removed)")
    print(f"{'measure':28} {'moby':>10} {'pydockerd':>10} {'ratio':>7}")
    for what in ("one_task_s", "replicas_s"):
        mo, py = results[what]["moby"]["median"], results[what]["pydockerd"]["median"]
        print(f"{what:28} {mo:10.2f} {py:10.2f} {py / mo:7.2f}")
    r = results["rss_kib"]
    print(f"{'pydockerd RSS MiB (idle/swarm)':28} {r['outside_swarm'] / 1024:10.1f} "
          f"{r['agent_active'] / 1024:10.1f} {r['agent_active'] / r['outside_swarm']:7.2f}")
    (HERE / "results-swarm-latest.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
