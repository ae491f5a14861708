#!/usr/bin/env python3
"""Logging benchmark, pydockerd vs real dockerd side by side (see bench/README.md).

    python3 bench/run_log_bench.py [--lines 1000000] [--containers 20] [--skip-dockerd]
                                   [--rotated-mb 1024]

For each engine: a container prints N short lines (`seq 1 N`) as fast as it can;
measured: seconds from `docker run -d` until the last line is in the json-file,
then `docker logs` of all of them, `docker logs --tail 10`; then the memory
(Pss) per idle logging container: engine@N - engine@0, over N containers; then
`docker logs --tail 100` (and 10) of a container that wrote ~`--rotated-mb` MB of
json-file in 1000-byte lines, rotated by max-size=100m / max-file=11 (0: skipped).
Daemon start/stop/cleanup is run_bench.py's (imported)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_bench as rb  # noqa: E402
from run_bench import Engine, PyDockerd, RealDockerd, log  # noqa: E402


def last_line_in(path: str, want: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 512))
            return want in f.read()
    except OSError:
        return False


def throughput(e: Engine, lines: int) -> dict:
    t0 = time.perf_counter()
    cid = e.must("run", "-d", "busybox", "seq", "1", str(lines)).strip()
    path = ""
    want = f'"log":"{lines}\\n"'.encode()
    deadline = time.time() + 600
    while time.time() < deadline:
        if not path:
            path = e.must("inspect", "-f", "{{.LogPath}}", cid).strip()
        if path and last_line_in(path, want):
            break
        time.sleep(0.02)
    written = time.perf_counter() - t0
    t1 = time.perf_counter()
    r = subprocess.run([rb.DOCKER_CLI, "logs", cid], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, env=e.env(), timeout=600)
    logs_all = time.perf_counter() - t1
    got = r.stdout.count(b"\n")
    tail = e.timed("logs", "--tail", "10", cid)
    size = os.path.getsize(path) if path else 0
    e.must("rm", "-f", cid)
    return {"write_s": round(written, 3), "logs_all_s": round(logs_all, 3),
            "logs_lines": got, "tail10_s": round(tail or 0, 3), "file_bytes": size}


def rotated_tail(e: Engine, mb: int) -> dict:
    """--tail on a big rotated json-file log: its cost should not grow with the log."""
    lines = mb * 1_000_000 // 1070           # a 1000-byte line is ~1070 bytes of json
    t0 = time.perf_counter()
    cid = e.must("run", "-d", "--log-opt", "max-size=100m", "--log-opt", "max-file=11",
                 "busybox", "sh", "-c",
                 f"yes $(head -c 990 /dev/zero | tr '\\0' y) | head -n {lines}; echo the-end"
                 ).strip()
    path = e.must("inspect", "-f", "{{.LogPath}}", cid).strip()
    deadline = time.time() + 1200
    while time.time() < deadline and not last_line_in(path, b'"log":"the-end\\n"'):
        time.sleep(0.2)
    written = time.perf_counter() - t0
    files = [p for p in os.listdir(os.path.dirname(path)) if p.startswith(os.path.basename(path))]
    total = sum(os.path.getsize(os.path.join(os.path.dirname(path), p)) for p in files)
    out = {"write_s": round(written, 1), "log_bytes": total, "files": len(files)}
    for n in (100, 10):
        best = min(e.timed("logs", "--tail", str(n), cid) or 0 for _ in range(3))
        out[f"tail{n}_s"] = round(best, 3)
    e.must("rm", "-f", cid)
    return out


def memory(e: Engine, n: int) -> dict:
    before = e.memory()["pss_kib"]
    ids = [e.must("run", "-d", "busybox", "sh", "-c", "echo hello; exec sleep 1000").strip()
           for _ in range(n)]
    time.sleep(2)
    after = e.memory()
    for cid in ids:
        e.cli("rm", "-f", cid)
    return {"per_container_pss_kib": round((after["pss_kib"] - before) / n, 1),
            "groups": after["groups"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--containers", type=int, default=20)
    ap.add_argument("--skip-dockerd", action="store_true")
    ap.add_argument("--rotated-mb", type=int, default=1024)
    a = ap.parse_args()
    subnets = rb.free_subnets(2)
    engines: list[Engine] = [PyDockerd("pydockerd", Path("/tmp/bench-log-pydockerd"),
                                       "benchlpyd0", subnets[0])]
    if not a.skip_dockerd and rb.shutil.which("dockerd"):
        dd = RealDockerd("dockerd", Path("/tmp/bench-log-dockerd"), "benchldocker0", subnets[1])
        dd.cgroup_parent = "benchlogdockerd"
        engines.append(dd)
    watched = rb.watch_host_paths()
    results: dict = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tar = Path(tmp) / "busybox.tar"
            rb.build_test_image("busybox", tar)
            for e in engines:
                e.start()
                e.must("load", "-i", str(tar))
            for e in engines:
                log(f"{e.name}: memory of {a.containers} containers")
                results[e.name] = {"memory": memory(e, a.containers)}
            for e in engines:
                log(f"{e.name}: {a.lines} lines")
                results[e.name]["throughput"] = throughput(e, a.lines)
            for e in engines:
                if a.rotated_mb:
                    log(f"{e.name}: --tail on a {a.rotated_mb} MB rotated log")
                    results[e.name]["rotated_tail"] = rotated_tail(e, a.rotated_mb)
    finally:
        rb.teardown(engines, watched)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
