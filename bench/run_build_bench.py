#!/usr/bin/env python3
"""Classic builder (`DOCKER_BUILDKIT=0 docker build`), pydockerd vs real dockerd.

    sudo python3 bench/run_build_bench.py [--runs 5] [--files 300] [--skip-dockerd]
                                          [--cases cached,nocache,restart]

Daemon start/stop/cleanup is run_bench.py's (imported), with bases and bridges of
its own (/tmp/bench-build-<engine>, benchbpyd0 / benchbdocker0), so it never meets
the other benches' daemons. The Dockerfile (FROM busybox, ENV, WORKDIR, COPY of a
context of --files small files in nested dirs, RUN, LABEL, EXPOSE, CMD) is built:

  cached    once to warm the cache, then N times, every step `Using cache`
  nocache   N times with --no-cache (each image removed again after the run)
  restart   after a daemon restart: every step must still be `Using cache`, with
            the same image id (checked; the first build's time is one sample)

Engines alternate order run by run; medians are reported with the ratio
pydockerd/dockerd. Results: a table and bench/results-build.json (git-ignored).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_bench as rb  # noqa: E402  (daemon start/stop/cleanup helpers)
from run_bench import Engine, PyDockerd, RealDockerd, log  # noqa: E402

HERE = rb.HERE
PYD_BASE = Path("/tmp/bench-build-pydockerd")
DD_BASE = Path("/tmp/bench-build-dockerd")
PYD_BRIDGE = "benchbpyd0"
DD_BRIDGE = "benchbdocker0"
CASES = ("cached", "nocache", "restart")
TAG = "bench-build:latest"
DOCKERFILE = """FROM busybox
ENV APP=/app MODE=bench
WORKDIR /app
COPY src/ /app/src/
COPY top.txt /app/
RUN echo built > /built.txt
LABEL bench=build
EXPOSE 8080
CMD ["sh", "-c", "ls /app"]
"""


class BuildDockerd(RealDockerd):
    cgroup_parent = "benchbuilddockerd"


def make_context(d: Path, files: int) -> None:
    (d / "Dockerfile").write_text(DOCKERFILE)
    (d / "top.txt").write_text("top\n")
    for i in range(files):
        sub = d / "src" / f"d{i % 10}" / f"e{i % 7}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.txt").write_bytes((f"file {i}\n" * (1 + i % 50)).encode())


def build(e: Engine, ctx: Path, *extra: str) -> tuple[float | None, str]:
    env = dict(e.env(), DOCKER_BUILDKIT="0")
    t0 = time.perf_counter()
    r = subprocess.run([rb.DOCKER_CLI, "build", "-t", TAG, *extra, str(ctx)],
                       capture_output=True, text=True, env=env, timeout=600,
                       stdin=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        e.note_error(f"build {' '.join(extra)} ({r.returncode}): {r.stderr.strip()[-500:]}")
        return None, r.stdout
    return dt, r.stdout


class BuildBench(rb.Bench):
    def __init__(self, engines: list[Engine], runs: int, ctx: Path):
        super().__init__(engines, runs, 0, 1)
        self.ctx = ctx
        self.checks: dict[str, dict[str, str]] = {}

    def cached(self) -> None:
        log("cached build (all steps Using cache)")
        for e in self.engines:
            build(e, self.ctx)

        def one(e: Engine) -> float | None:
            dt, out = build(e, self.ctx)
            steps = out.count("Step ")
            hits = out.count("Using cache")
            if dt is not None and hits != steps - 1:          # FROM is never a cache hit
                e.note_error(f"cached build: {hits} of {steps - 1} steps from the cache")
                return None
            return dt
        self.add("build, fully cached", "ms", self.interleaved(one), 1000)

    def nocache(self) -> None:
        log("build --no-cache")

        def one(e: Engine) -> float | None:
            dt, _ = build(e, self.ctx, "--no-cache")
            return dt
        self.add("build --no-cache", "ms", self.interleaved(one), 1000)

    def restart(self) -> None:
        log("cached build after a daemon restart")
        first_build: dict[str, float | None] = {}
        for e in self.engines:
            build(e, self.ctx)
            before = e.must("image", "inspect", "-f", "{{.Id}}", TAG).strip()
            e.cleanup()                     # stop (SIGTERM), unmount; the data root stays
            e.start_again()
            dt, out = build(e, self.ctx)
            first_build[e.name] = None if dt is None else dt * 1000
            after = e.must("image", "inspect", "-f", "{{.Id}}", TAG).strip()
            steps, hits = out.count("Step "), out.count("Using cache")
            verdict = "ok" if hits == steps - 1 and before == after else \
                f"FAILED: {hits} of {steps - 1} steps cached, id {before[:19]} -> {after[:19]}"
            self.checks.setdefault("restart", {})[e.name] = verdict
            log(f"  {e.name}: {verdict}")
        self.add("build, fully cached, first after a restart", "ms", {}, single=first_build,
                 note="one sample per engine")


def restartable(cls: type) -> type:
    """The engine class with start_again(): start once more on the same data root
    (start() itself begins from an empty base)."""
    class R(cls):  # type: ignore[valid-type,misc]
        def start_again(self) -> None:
            # dockerd's containerd keeps nothing the images need (overlay2 is dockerd's)
            shutil.rmtree(self.base / "containerd", ignore_errors=True)
            prepare = self.prepare_base
            self.prepare_base = lambda: None
            try:
                self.start()
            finally:
                self.prepare_base = prepare
    R.__name__ = cls.__name__
    return R


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="samples per metric (median reported)")
    ap.add_argument("--files", type=int, default=300, help="files in the COPY context")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    ap.add_argument("--skip-dockerd", action="store_true", help="benchmark pydockerd alone")
    ap.add_argument("--output", default=str(HERE / "results-build.json"))
    args = ap.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in cases if c not in CASES]
    if bad:
        print(f"unknown case(s): {', '.join(bad)}; choose from {', '.join(CASES)}", file=sys.stderr)
        return 2
    if not rb.is_root():
        return 2
    use_dockerd = rb.dockerd_wanted(args.skip_dockerd)
    if rb.stale_bridge(PYD_BRIDGE, DD_BRIDGE):
        return 2

    watched_before = rb.watch_host_paths()
    subnets = rb.free_subnets(2)
    engines: list[Engine] = [restartable(PyDockerd)("pydockerd", PYD_BASE, PYD_BRIDGE, subnets[0])]
    if use_dockerd:
        engines.append(restartable(BuildDockerd)("dockerd", DD_BASE, DD_BRIDGE, subnets[1]))
    result: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": args.runs,
                    "files": args.files, "cases": cases,
                    "host": {"nproc": os.cpu_count(), "kernel": platform.release()},
                    "engines": {}, "metrics": [], "errors": {}}
    work = Path(tempfile.mkdtemp(prefix="bench-build-"))
    bench: BuildBench | None = None
    rc = 0
    t_start = time.time()
    signal.signal(signal.SIGTERM, rb._interrupt)
    try:
        tar = work / "busybox.tar"
        rb.build_test_image("busybox", tar)
        ctx = work / "ctx"
        ctx.mkdir()
        make_context(ctx, args.files)
        for e in engines:
            result["engines"][e.name] = {"version": rb.start_engine(e), "base": str(e.base)}
            e.must("load", "-i", str(tar))
        bench = BuildBench(engines, args.runs, ctx)
        for c in cases:
            getattr(bench, c)()
    except (Exception, KeyboardInterrupt) as ex:
        rb.record_fatal(result, ex)
        rc = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for e in engines:
            result["errors"][e.name] = e.errors
            result.setdefault("daemon_log_problems", {})[e.name] = rb.daemon_log_problems(e)
            rb.keep_log(e, HERE / f"results-build-{e.name}.log")
        rb.teardown(engines, watched_before)
        for e in engines:
            shutil.rmtree(e.base.with_name(e.base.name + ".keep"), ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)

    result["elapsed_s"] = round(time.time() - t_start, 1)
    result["metrics"] = bench.metrics if bench else []
    result["checks"] = bench.checks if bench else {}
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(f"classic build, pydockerd vs dockerd — {args.files} files in the COPY context, "
          f"median of {args.runs} runs; {result['elapsed_s']} s total")
    for n, info in result["engines"].items():
        print(f"  {n}: {info['version']}")
    print()
    rb.print_table(result["metrics"], [e.name for e in engines])
    for case, verdicts in result["checks"].items():
        for n, v in verdicts.items():
            print(f"  {case} check, {n}: {v}")
    rb.print_problems(engines, result, args.output)
    return rc


if __name__ == "__main__":
    sys.exit(main())
