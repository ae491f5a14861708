#!/usr/bin/env python3
"""Image throughput, pydockerd vs real dockerd: docker load, save, push and pull of
a ~200 MB image (the `big` test image of pydockerd.testing.images: busybox + one
data layer, half random, half repetitive), through one local Debian
docker-registry shared by both daemons.

    sudo python3 bench/run_image_bench.py [--runs 3] [--size-mb 200] [--skip-dockerd]

Daemon start/stop/cleanup is run_bench.py's (imported). Each engine gets its
own socket, data root, bridge and subnet (/tmp/bench-img-<engine>, bridges
benchipyd0 / benchidocker0), so this never meets run_bench.py's daemons.

One run, per engine, from a clean state (no image, no layer):
  load   docker load -i big.tar
  save   docker save -o out.tar big:latest
  push   docker push 127.0.0.1:P/<pyd|dkr>/big-r<run>:latest, a repository that is
         new in every run, into a registry whose storage was emptied just before,
         so no blob can be skipped (HEAD) or cross-repo mounted: both daemons
         remember where they pushed a layer (dockerd even after rmi) and would
         otherwise mount it from the previous run's repository.
  pull   rmi -f <image id> + image prune -af, then docker pull of what was pushed
         (the output is checked: no "Already exists" layer allowed)
Engines alternate order run by run; the median of N runs is reported, as
seconds and as MB/s = size-mb / seconds. The daemon's CPU seconds (utime+stime,
own + reaped children; dockerd adds its containerd) during each step are recorded
too, to show whether a step is CPU-bound.

Results: a table on stdout and bench/results-images.json (git-ignored).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_bench as rb  # noqa: E402  (daemon start/stop/cleanup helpers)
from run_bench import Engine, PyDockerd, RealDockerd, log  # noqa: E402

HERE = rb.HERE
REGISTRY_BIN = "/usr/bin/docker-registry"
PYD_BASE = Path("/tmp/bench-img-pydockerd")
DD_BASE = Path("/tmp/bench-img-dockerd")
PYD_BRIDGE = "benchipyd0"
DD_BRIDGE = "benchidocker0"
STEPS = ("load", "save", "push", "pull")
OP_TIMEOUT = 1200.0
REPO_PREFIX = {"pydockerd": "pyd", "dockerd": "dkr"}


class ImgDockerd(RealDockerd):
    cgroup_parent = "benchimgdockerd"


# --------------------------------------------------------------------------- registry

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    def __init__(self, base: Path):
        self.base = base
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def storage(self) -> Path:
        return self.base / "data"

    def start(self) -> None:
        self.storage.mkdir(parents=True)
        cfg = self.base / "config.yml"
        # no storage.cache section: no blob descriptor cache, so emptying the storage
        # directory between runs really empties the registry
        cfg.write_text("\n".join([
            "version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
            "storage:", "  filesystem:", f"    rootdirectory: {self.storage}",
            "  delete:", "    enabled: true", "http:", f"  addr: {self.host}",
            "  secret: pydockerd-bench"]) + "\n")
        logf = open(self.base / "registry.log", "ab")
        log(f"starting docker-registry on {self.host} (storage {self.storage})")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(cfg)], stdout=logf, stderr=logf,
                                     start_new_session=True)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("docker-registry exited:\n" +
                                   (self.base / "registry.log").read_text(errors="replace")[-2000:])
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not come up")

    def wipe(self) -> None:
        """Empty the storage (blobs, repositories, uploads) under the running registry."""
        for p in self.storage.iterdir():
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()

    def blob_bytes(self) -> int:
        blobs = self.storage / "docker" / "registry" / "v2" / "blobs"
        total = 0
        for dirpath, _, files in os.walk(blobs):
            for f in files:
                total += os.path.getsize(os.path.join(dirpath, f))
        return total

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


# --------------------------------------------------------------------------- measuring

def cpu_seconds(pid: int) -> float:
    """utime+stime+cutime+cstime of pid, in seconds (0 if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is state (field 3): utime..cstime are fields 14..17
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def engine_cpu(e: Engine) -> float:
    pids = [e.proc.pid] if e.proc else []
    pids += [p.pid for p in e.helper_procs]          # dockerd's containerd
    return sum(cpu_seconds(p) for p in pids)


def dir_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


class ImageBench:
    def __init__(self, engines: list[Engine], reg: Registry, tar: Path, work: Path,
                 runs: int, size_mb: float):
        self.engines = engines
        self.reg = reg
        self.tar = tar
        self.work = work
        self.runs = runs
        self.size_mb = size_mb
        self.samples: dict[str, dict[str, list[float]]] = {s: {e.name: [] for e in engines}
                                                           for s in STEPS}
        self.cpu: dict[str, dict[str, list[float]]] = {s: {e.name: [] for e in engines}
                                                       for s in STEPS}
        self.reg_cpu: dict[str, dict[str, list[float]]] = {s: {e.name: [] for e in engines}
                                                           for s in ("push", "pull")}
        self.details: list[dict] = []
        self.warnings: dict[str, list[str]] = {e.name: [] for e in engines}

    def warn(self, e: Engine, msg: str) -> None:
        log(f"  {e.name} WARNING: {msg}")
        self.warnings[e.name].append(msg)

    def clean(self, e: Engine) -> None:
        """No image, no layer: rmi -f every image, then prune (dangling and unused)."""
        ids = sorted(set(e.cli("images", "-aq", "--no-trunc").stdout.split()))
        if ids:
            e.cli("rmi", "-f", *ids, timeout=OP_TIMEOUT)
        e.cli("image", "prune", "-af", timeout=OP_TIMEOUT)
        left = e.cli("images", "-aq").stdout.split()
        if left:
            raise RuntimeError(f"{e.name}: images left after rmi -f + prune: {left}")
        # pydockerd keeps the gzip blob it pushed or pulled (<data-root>/distribution/blobs)
        # and drops blobs of deleted layers only when the next pull/push starts. Without
        # this, a push after rmi + load of the same layer re-sends the kept blob instead
        # of compressing again. A pull of a missing repository starts that gc (and fails).
        # dockerd keeps no compressed blobs; it gets the same call, so both do the same.
        r = e.cli("pull", f"{self.reg.host}/gc/none:none", timeout=OP_TIMEOUT)
        if r.returncode == 0:
            raise RuntimeError(f"{e.name}: pull of a missing repository succeeded?")
        kept = e.base / "data" / "distribution" / "blobs"
        if kept.is_dir() and any(kept.iterdir()):
            self.warn(e, f"compressed blobs still kept after rmi + prune + pull: "
                         f"{sorted(os.listdir(kept))}")

    def timed(self, e: Engine, step: str, *args: str) -> tuple[float | None, str]:
        c0, r0 = engine_cpu(e), cpu_seconds(self.reg.proc.pid)
        t0 = time.perf_counter()
        try:
            r = e.cli(*args, timeout=OP_TIMEOUT)
        except subprocess.TimeoutExpired:
            e.note_error(f"docker {' '.join(args)}: timed out after {OP_TIMEOUT}s")
            return None, ""
        dt = time.perf_counter() - t0
        cpu = engine_cpu(e) - c0
        if r.returncode != 0:
            e.note_error(f"docker {' '.join(args)} ({r.returncode}): {r.stderr.strip()[-2000:]}")
            return None, r.stdout
        self.samples[step][e.name].append(dt)
        self.cpu[step][e.name].append(cpu)
        if step in ("push", "pull"):
            self.reg_cpu[step][e.name].append(round(cpu_seconds(self.reg.proc.pid) - r0, 2))
        log(f"  {e.name} {step}: {dt:.2f}s ({self.size_mb / dt:.1f} MB/s), daemon CPU {cpu:.2f}s")
        return dt, r.stdout

    def cycle(self, e: Engine, i: int) -> None:
        d: dict = {"engine": e.name, "run": i}
        self.clean(e)
        d["data_root_bytes_clean"] = dir_bytes(e.base / "data")
        dt, _ = self.timed(e, "load", "load", "-i", str(self.tar))
        if dt is None:
            return
        img_id = e.must("image", "inspect", "--format", "{{.Id}}", "big:latest").strip()
        d["image_id"] = img_id
        out = self.work / f"save-{e.name}.tar"
        dt, _ = self.timed(e, "save", "save", "-o", str(out), "big:latest")
        if dt is not None:
            d["save_bytes"] = out.stat().st_size
        out.unlink(missing_ok=True)

        ref = f"{self.reg.host}/{REPO_PREFIX[e.name]}/big-r{i}:latest"
        e.must("tag", "big:latest", ref)
        self.reg.wipe()
        dt, stdout = self.timed(e, "push", "push", ref)
        if dt is None:
            return
        for marker in ("Mounted from", "Layer already exists"):
            if marker in stdout:
                self.warn(e, f"push run {i} did not upload every layer: {marker!r} in\n{stdout}")
        d["push_output"] = stdout.strip().splitlines()[-1:]
        d["registry_blob_bytes"] = self.reg.blob_bytes()
        pushed_digest = next((w for ln in stdout.splitlines() if "digest:" in ln
                              for w in ln.split() if w.startswith("sha256:")), None)
        d["manifest_digest"] = pushed_digest

        e.must("rmi", "-f", img_id, timeout=OP_TIMEOUT)
        self.clean(e)
        d["data_root_bytes_before_pull"] = dir_bytes(e.base / "data")
        dt, stdout = self.timed(e, "pull", "pull", ref)
        if dt is None:
            return
        if "Already exists" in stdout:
            self.warn(e, f"pull run {i} reused a local layer ('Already exists'):\n{stdout}")
        pulled = e.must("image", "inspect", "--format", "{{.Id}}", ref).strip()
        if pulled != img_id:
            self.warn(e, f"pull run {i}: image id {pulled} != loaded {img_id}")
        self.details.append(d)
        self.clean(e)

    def run(self) -> None:
        for i in range(1, self.runs + 1):
            order = self.engines if i % 2 == 1 else list(reversed(self.engines))
            for e in order:
                log(f"run {i}/{self.runs}: {e.name}")
                self.cycle(e, i)

    def metrics(self) -> list[dict]:
        rows = []
        for s in STEPS:
            row: dict = {"step": s, "seconds": {}, "mb_per_s": {}, "daemon_cpu_s": {},
                         "samples_s": {}}
            for e in self.engines:
                xs = self.samples[s][e.name]
                med = statistics.median(xs) if xs else None
                row["samples_s"][e.name] = [round(x, 3) for x in xs]
                row["seconds"][e.name] = None if med is None else round(med, 3)
                row["mb_per_s"][e.name] = None if not med else round(self.size_mb / med, 2)
                cs = self.cpu[s][e.name]
                row["daemon_cpu_s"][e.name] = round(statistics.median(cs), 2) if cs else None
            a, b = row["seconds"].get("pydockerd"), row["seconds"].get("dockerd")
            row["time_ratio_pyd_over_dockerd"] = round(a / b, 3) if a and b else None
            row["throughput_ratio_pyd_over_dockerd"] = round(b / a, 3) if a and b else None
            rows.append(row)
        return rows


def print_table(rows: list[dict], names: list[str], size_mb: float) -> None:
    both = len(names) > 1
    cols = ["step"]
    for n in names:
        cols += [f"{n} s", f"{n} MB/s", f"{n} cpu s"]
    if both:
        cols += ["time pyd/dkr", "MB/s pyd/dkr"]
    table = []
    for r in rows:
        line = [r["step"]]
        for n in names:
            s, t, c = r["seconds"].get(n), r["mb_per_s"].get(n), r["daemon_cpu_s"].get(n)
            line += ["FAILED" if s is None else f"{s:.2f}", "-" if t is None else f"{t:.1f}",
                     "-" if c is None else f"{c:.1f}"]
        if both:
            tr, qr = r["time_ratio_pyd_over_dockerd"], r["throughput_ratio_pyd_over_dockerd"]
            line += ["-" if tr is None else f"{tr:.2f}x", "-" if qr is None else f"{qr:.2f}x"]
        table.append(line)
    widths = [max(len(str(x)) for x in col) for col in zip(cols, *table)]
    fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                for i, (c, w) in enumerate(zip(row, widths)))
    print(fmt(cols))
    print("-" * len(fmt(cols)))
    for line in table:
        print(fmt(line))
    print(f"  * MB/s = {size_mb:g} MB / median seconds; cpu s = daemon CPU (median) during the step"
          " (dockerd: + its containerd); MB/s pyd/dkr >= 1.00x means pydockerd is at least as fast")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs per engine (median reported)")
    ap.add_argument("--size-mb", type=int, default=200, help="size of the image's data layer")
    ap.add_argument("--skip-dockerd", action="store_true", help="benchmark pydockerd alone")
    ap.add_argument("--output", default=str(HERE / "results-images.json"))
    ap.add_argument("--no-logs", action="store_true",
                    help="do not copy daemon logs to bench/results-images-<engine>.log")
    args = ap.parse_args()

    if not rb.is_root():
        return 2
    for path in (rb.DOCKER_CLI, REGISTRY_BIN):
        if not os.path.exists(path):
            print(f"{path} not found", file=sys.stderr)
            return 2
    use_dockerd = rb.dockerd_wanted(args.skip_dockerd)
    if rb.stale_bridge(PYD_BRIDGE, DD_BRIDGE):
        return 2

    watched_before = rb.watch_host_paths()
    subnets = rb.free_subnets(2)
    engines: list[Engine] = [PyDockerd("pydockerd", PYD_BASE, PYD_BRIDGE, subnets[0])]
    if use_dockerd:
        engines.append(ImgDockerd("dockerd", DD_BASE, DD_BRIDGE, subnets[1]))

    result: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": args.runs,
                    "size_mb": args.size_mb,
                    "host": {"nproc": os.cpu_count(), "kernel": platform.release()},
                    "engines": {}, "metrics": [], "errors": {}}
    work = Path(tempfile.mkdtemp(prefix="bench-images-"))
    reg = Registry(work / "registry")
    bench: ImageBench | None = None
    rc = 0
    t_start = time.time()
    signal.signal(signal.SIGTERM, rb._interrupt)
    try:
        tar = work / "big.tar"
        log(f"building the test image: pydockerd.testing.images big --size-mb {args.size_mb}")
        rb.build_test_image("big", tar, "--size-mb", str(args.size_mb))
        result["image_tar_bytes"] = tar.stat().st_size
        log(f"big.tar: {tar.stat().st_size / 1e6:.1f} MB")
        reg.start()
        ver = subprocess.run([REGISTRY_BIN, "--version"], capture_output=True, text=True).stdout.strip()
        result["registry"] = {"version": ver, "addr": reg.host}
        for e in engines:
            result["engines"][e.name] = {"version": rb.start_engine(e), "base": str(e.base)}
        bench = ImageBench(engines, reg, tar, work, args.runs, args.size_mb)
        bench.run()
    except (Exception, KeyboardInterrupt) as ex:
        rb.record_fatal(result, ex)
        rc = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for e in engines:
            result["errors"][e.name] = e.errors
            # dockerd tries https first on an insecure registry, then http: not a problem
            result.setdefault("daemon_log_problems", {})[e.name] = [
                ln for ln in rb.daemon_log_problems(e, limit=200)
                if "server gave HTTP response to HTTPS client" not in ln][:20]
            if not args.no_logs:
                rb.keep_log(e, HERE / f"results-images-{e.name}.log")
        rb.teardown(engines, watched_before)
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)

    result["elapsed_s"] = round(time.time() - t_start, 1)
    rows = bench.metrics() if bench else []
    result["metrics"] = rows
    if bench:
        result["registry_cpu_s"] = bench.reg_cpu
        result["runs_detail"] = bench.details
        result["warnings"] = bench.warnings
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(f"image throughput, pydockerd vs dockerd — {args.size_mb} MB image, median of "
          f"{args.runs} runs; {result['elapsed_s']} s total")
    for n, info in result["engines"].items():
        print(f"  {n}: {info['version']}")
    if "registry" in result:
        print(f"  registry: {result['registry']['version']} on {result['registry']['addr']}")
    print()
    print_table(rows, [e.name for e in engines], args.size_mb)
    if bench:
        for d in bench.details:
            print(f"  {d['engine']} run {d['run']}: pushed blobs {d.get('registry_blob_bytes', 0) / 1e6:.1f} MB"
                  f" in the registry, save wrote {d.get('save_bytes', 0) / 1e6:.1f} MB")
        for n, ws in bench.warnings.items():
            for w in ws:
                print(f"  ! {n}: {w.splitlines()[0]}")
    rb.print_problems(engines, result, args.output)
    return rc


if __name__ == "__main__":
    sys.exit(main())
