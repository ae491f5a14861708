#!/usr/bin/env python3
"""Start latency against the number of mounts on the host, simulated (no hundreds of containers).

    sudo python3 bench/run_mount_scale.py [--mounts 0,500,1000,2000] [--runs 9]
        [--running 32] [--under containers|scratch] [--skip-daemon] [--skip-runc] [--profile]

Every container of a real host adds mounts to the daemon's mount namespace (its
overlay rootfs and, before issue 10, its network namespace pin), and runc's work
grows with them: CLONE_NEWNS copies the whole tree, runc reads /proc/self/mountinfo
several times per command (cgroup v1 mount lookups, the intelrdt probe, the rootfs'
parent mount) and detaches the old root. This bench makes N small tmpfs mounts instead,
below the daemon's containers directory where the rootfs mounts of running
containers are (`--under containers`, the default) or in a private scratch directory
(`--under scratch`: mounts of the host that are not ours). It first times a run
with no container running (the first container's start: runc in the host's
namespace), then starts --running containers (by default as many as make the
daemon run runc in its own mount namespaces, runtime/mountns.CROWDED), and at
each N times:

  run      `docker run --rm --network none busybox true` against a pydockerd of this
           checkout (own data root, socket, bridge mscale<hex>, free /24): wall
           milliseconds (median), the daemon's CPU ms per run (utime + stime), and
           the CPU ms per run of the daemon with all it ran (conmon, runc, nsenter,
           the container: reaped children's times), which load hardly disturbs;
  runc     a bare `runc run` of a prepared busybox bundle (no daemon, no conmon):
           wall ms (median) and CPU ms per run (task clock of runc and its children);
  mounts   how many mounts a container adds to the host namespace while it runs
           (counted once, with one `busybox sleep` container).

--profile adds `strace -f -c` of one bare `runc run` per N (the syscalls that grow).
Everything is removed in a finally block (also on Ctrl-C): the N mounts, the daemon,
its bridge, conmons and data root. Results: stdout and bench/results-mount-scale.json.
Run it under the shared bench lock when others measure: `flock /tmp/bench.lock ...`.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_bench as rb  # noqa: E402  (daemon start/stop/cleanup helpers)
from run_bench import PyDockerd, log  # noqa: E402

sys.path.insert(0, str(rb.ROOT / "src"))
from pydockerd.runtime.mountns import CROWDED  # noqa: E402

HERE = rb.HERE
_libc = ctypes.CDLL(None, use_errno=True)
_MNT_DETACH = 2


def mount_count(below: str = "") -> int:
    """Mounts in this (the host's) namespace; with `below`, only those below it."""
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if line.split(" ", 5)[4].startswith(below))


class SimMounts:
    """N tmpfs mounts under one private scratch directory; all removed by clear()."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.made: list[str] = []

    def set(self, n: int) -> None:
        self.clear()
        self.base.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            d = self.base / str(i)
            d.mkdir(exist_ok=True)
            if _libc.mount(b"tmpfs", os.fsencode(d), b"tmpfs", 0, b"size=4k") != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"mount tmpfs on {d}: {os.strerror(err)}")
            self.made.append(str(d))

    def clear(self) -> None:
        while self.made:
            d = self.made.pop()
            if _libc.umount2(os.fsencode(d), _MNT_DETACH) != 0:
                log(f"umount {d}: {os.strerror(ctypes.get_errno())}")
        shutil.rmtree(self.base, ignore_errors=True)


def cpu_ms(pid: int, children: bool = False) -> float:
    """utime + stime of `pid`; with children, plus those of its reaped children (the
    daemon reaps conmon, which reaped runc create and the container: a run's whole
    CPU, whatever the load of the machine does to its wall time)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks * 1000.0 / os.sysconf("SC_CLK_TCK")


def children_cpu_ms() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * 1000.0


def make_bundle(path: Path) -> None:
    """A runc bundle of the host's busybox running `true` (runc's default spec)."""
    rootfs = path / "rootfs"
    for d in ("bin", "proc", "sys", "dev", "etc", "tmp"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    rb.run(["runc", "spec", "--bundle", str(path)], check=True)
    spec = json.loads((path / "config.json").read_text())
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/busybox", "true"]
    (path / "config.json").write_text(json.dumps(spec))


def time_runc(bundle: Path, root: Path, runs: int) -> tuple[float, float]:
    walls: list[float] = []
    cpu0 = children_cpu_ms()
    for i in range(runs + 1):
        t0 = time.perf_counter()
        rb.run(["runc", "--root", str(root), "run", "--bundle", str(bundle), f"mscale{i}"],
               check=True)
        if i:                                   # the first is a warm-up
            walls.append((time.perf_counter() - t0) * 1000)
        else:
            cpu0 = children_cpu_ms()
    return statistics.median(walls), (children_cpu_ms() - cpu0) / runs


def strace_runc(bundle: Path, root: Path, out: Path) -> list[str]:
    rb.run(["strace", "-f", "-w", "-c", "-o", str(out), "runc", "--root", str(root), "run",
            "--bundle", str(bundle), "mscale-strace"])
    lines = out.read_text().splitlines() if out.exists() else []
    return [ln for ln in lines[2:14] if ln.strip()]


def time_daemon(e: PyDockerd, runs: int) -> tuple[float, float, float]:
    """Median wall ms of a run, the daemon's CPU ms per run, and the CPU ms per run of
    the daemon and everything it ran (conmon, runc, nsenter, the container)."""
    assert e.proc is not None
    argv = ("run", "--rm", "--network", "none", "busybox", "true")
    e.must(*argv)                               # warm-up
    walls: list[float] = []
    cpu0, all0 = cpu_ms(e.proc.pid), cpu_ms(e.proc.pid, children=True)
    for _ in range(runs):
        t = e.timed(*argv)
        if t is not None:
            walls.append(t * 1000)
    time.sleep(0.2)                             # the last conmon reaped
    return (statistics.median(walls), (cpu_ms(e.proc.pid) - cpu0) / runs,
            (cpu_ms(e.proc.pid, children=True) - all0) / runs)


def mounts_per_container(e: PyDockerd) -> int:
    """Mounts below the daemon's base that one running container adds (what other
    processes mount meanwhile does not count)."""
    before = mount_count(f"{e.base}/")
    cid = e.must("run", "-d", "busybox", "sleep", "60").strip()
    try:
        return mount_count(f"{e.base}/") - before
    finally:
        e.must("rm", "-f", cid)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mounts", default="0,500,1000,2000")
    p.add_argument("--runs", type=int, default=9)
    p.add_argument("--skip-daemon", action="store_true")
    p.add_argument("--skip-runc", action="store_true")
    p.add_argument("--profile", action="store_true", help="strace -f -c of a bare runc run")
    p.add_argument("--under", choices=("containers", "scratch"), default="containers",
                   help="where the N mounts go: below the daemon's containers directory, "
                        "where the rootfs mounts of running containers are (default), or "
                        "in a scratch directory (mounts of the host that are not ours)")
    p.add_argument("--running", type=int, default=CROWDED,
                   help="containers kept running while the N mounts are measured (default "
                        "runtime/mountns.CROWDED, from which runc runs in the daemon's own "
                        "mount namespaces); a first row, 'none', times a run with none")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    base = Path(f"/tmp/mscale-{os.getpid()}")
    watched = rb.watch_host_paths()
    e = PyDockerd("pydockerd", base / "pyd", f"mscale{os.getpid() % 0xffff:x}",
                  rb.free_subnets(1)[0])
    sim = SimMounts(base / "pyd" / "data" / "containers" / ".sim" if args.under == "containers"
                    else base / "sim")
    results: dict = {"mounts": [], "host_mounts_at_start": mount_count(), "under": args.under}
    try:
        bundle = base / "bundle"
        make_bundle(bundle)
        if not args.skip_daemon:
            e.start()
            rb.build_test_image("busybox", base / "busybox.tar")
            e.must("load", "-i", str(base / "busybox.tar"))
            results["mounts_per_container"] = mounts_per_container(e)
            log(f"a running container adds {results['mounts_per_container']} host mounts")
        if not args.skip_daemon:
            # the first container's start: nothing else running (the host's namespace)
            row0: dict = {"extra": "none", "mountinfo_lines": mount_count()}
            row0["run_ms"], row0["daemon_cpu_ms"], row0["run_cpu_ms"] = time_daemon(e, args.runs)
            log(f"no container running: {row0}")
            results["mounts"].append(row0)
            for _ in range(args.running):
                e.must("run", "-d", "busybox", "sleep", "100000")
            log(f"{args.running} containers running")
        for n in [int(x) for x in args.mounts.split(",")]:
            sim.set(n)
            row: dict = {"extra": n, "mountinfo_lines": mount_count()}
            if not args.skip_runc:
                row["runc_ms"], row["runc_cpu_ms"] = time_runc(bundle, base / "runc", args.runs)
                if args.profile:
                    row["runc_strace"] = strace_runc(bundle, base / "runc",
                                                     base / f"strace-{n}.txt")
            if not args.skip_daemon:
                row["run_ms"], row["daemon_cpu_ms"], row["run_cpu_ms"] = time_daemon(e, args.runs)
            log(f"N={n}: {row}")
            results["mounts"].append(row)
    finally:
        sim.clear()
        if e.proc is not None:
            ids = e.cli("ps", "-aq").stdout.split()
            if ids:
                e.cli("rm", "-f", *ids, timeout=300)
        rb.teardown([e], watched)
        shutil.rmtree(base, ignore_errors=True)
    (HERE / "results-mount-scale.json").write_text(json.dumps(results, indent=1))
    first = results["mounts"][0] if results["mounts"] else {}
    print(f"{'extra mounts':>12} {'lines':>6} {'runc ms':>14} {'runc cpu':>14} "
          f"{'run ms':>14} {'daemon cpu':>14} {'run cpu':>14}")
    for row in results["mounts"]:
        def cell(k: str, w: int) -> str:
            v = row.get(k)
            if v is None:
                return " " * w
            rel = f"{100 * (v / first[k] - 1):+.0f}%" if first.get(k) else ""
            return f"{v:.1f}{rel:>5}".rjust(w)
        print(f"{row['extra']:>12} {row['mountinfo_lines']:>6} {cell('runc_ms', 14)} "
              f"{cell('runc_cpu_ms', 14)} {cell('run_ms', 14)} {cell('daemon_cpu_ms', 14)} "
              f"{cell('run_cpu_ms', 14)}")
        for ln in row.get("runc_strace", []):
            print("     ", ln)
    return 0


if __name__ == "__main__":
    sys.exit(main())
