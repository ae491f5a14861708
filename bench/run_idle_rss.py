#!/usr/bin/env python3
"""Memory of a fresh idle pydockerd (issue 10: idle RSS <= 30 MiB).

    sudo python3 bench/run_idle_rss.py [--starts 6] [--settle 2.5] [--smaps FILE]

Starts this checkout's daemon (src/) --starts times as the tests start it
(tests/conftest.py: empty data root, own socket, bridge and subnet), waits
--settle seconds after it first answers (the start-up trim is done by then),
reads /proc/<pid>/status (VmRSS, RssAnon, RssFile, Threads) and smaps_rollup
(Pss), stops it and removes everything it made. Prints each start and the
medians (MiB). --smaps copies the last daemon's /proc/<pid>/smaps there, for a
look at the mappings.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "src")]

import conftest  # noqa: E402  (the tests' Daemon: same start, same clean-up)

FIELDS = ("VmRSS", "RssAnon", "RssFile", "Pss")


def read_memory(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "Threads"):
                out[key] = int(value.split()[0])
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                out["Pss"] = int(line.split()[1])
    return {k: v if k == "Threads" else v / 1024 for k, v in out.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--starts", type=int, default=6)
    ap.add_argument("--settle", type=float, default=2.5)
    ap.add_argument("--smaps", default="")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root (the daemon needs it)", file=sys.stderr)
        return 2
    rows: list[dict[str, float]] = []
    for i in range(args.starts):
        base = Path(tempfile.mkdtemp(prefix="pdt-idle-", dir="/tmp"))
        d = conftest.make_daemon(base, [])
        try:
            d.start()
            time.sleep(args.settle)
            assert d.proc is not None
            rows.append(read_memory(d.proc.pid))
            if args.smaps and i == args.starts - 1:
                shutil.copy(f"/proc/{d.proc.pid}/smaps", args.smaps)
        finally:
            conftest.cleanup_daemon(d)
            shutil.rmtree(base, ignore_errors=True)
        print("  ".join(f"{k} {rows[-1][k]:5.1f}" for k in FIELDS)
              + f"  threads {rows[-1]['Threads']:.0f}", flush=True)
    print("median (MiB): " + "  ".join(
        f"{k} {statistics.median(r[k] for r in rows):5.2f}" for k in FIELDS)
        + " (target VmRSS <= 30)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
