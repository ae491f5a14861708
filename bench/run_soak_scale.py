#!/usr/bin/env python3
"""pydockerd memory soak, scale and start-up, with the daemon's RSS curve printed.

    sudo python3 bench/run_soak_scale.py [--phases soak,big,scale,restart,startup]
        [--cycles 2000] [--ops 20] [--big-mb 2048] [--containers 1000] [--images 100]
        [--shutdown-timeout S]

Phases (each prints a curve of the daemon's VmRSS / VmHWM / Pss, in MiB):
  soak     N create/start/stop/rm cycles over the API (keep-alive), with --ops
           loads, builds, pushes and pulls spread over them (local Debian
           docker-registry); RSS sampled every --sample-every cycles.
  big      a --big-mb layer (the `big` test image) loaded, saved, pushed, removed
           and pulled; the daemon's RSS is sampled every 0.1 s during each step
           (VmHWM is reset through /proc/<pid>/clear_refs before the phase).
  scale    --containers running `busybox sleep` containers, started one by one
           (create + start over the API, timed); every --scale-step: RSS, Pss of
           the conmons, `docker ps` and `docker ps -a` (median of 3, CLI).
  restart  with the containers of `scale` running: a SIGTERM shutdown (its
           seconds, under --shutdown-timeout), the start after it; then all
           started again, the daemon SIGKILLed, and the start after that crash:
           seconds to the first /_ping and until no container is left running.
  startup  --images distinct images built (COPY of a small file), then the daemon
           is restarted with live-restore (the containers keep running),
           without (shutdown stops them), and once more (all exited): seconds
           from exec to the first /_ping 200.

The daemon runs from this checkout's src/ on its own base (/tmp/soak-<pid>),
socket, bridge (soakpyd<hex>) and a free /21. Everything is removed in a finally
block (also on SIGTERM / Ctrl-C): containers, conmons, mounts, bridge, registry,
temp dirs. Results: stdout and bench/results-soak.json (git-ignored).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import ipaddress
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_bench as rb  # noqa: E402  (daemon start/stop/cleanup helpers)
from run_bench import PyDockerd, UnixHTTPConnection, log  # noqa: E402
from run_image_bench import Registry  # noqa: E402

HERE = rb.HERE
MiB = 1024.0


# --------------------------------------------------------------------------- memory

def proc_mem(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM (status) and Pss (smaps_rollup) of one process, in MiB."""
    out = {"rss": 0.0, "hwm": 0.0, "pss": 0.0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss"] = int(line.split()[1]) / MiB
                elif line.startswith("VmHWM:"):
                    out["hwm"] = int(line.split()[1]) / MiB
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["pss"] = int(line.split()[1]) / MiB
    except OSError:
        pass
    return out


def reset_hwm(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


class Sampler:
    """Samples the daemon's VmRSS every `every` seconds in a thread; max kept."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.pid, self.every = pid, every
        self.max_rss = 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.max_rss = max(self.max_rss, proc_mem(self.pid)["rss"])
            self._stop.wait(self.every)

    def __enter__(self) -> "Sampler":
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


# --------------------------------------------------------------------------- daemon

def free_subnet21() -> str:
    """A /21 in 10.0.0.0/8 that nothing routes or addresses (room for 1,000+ containers)."""
    used = rb.host_networks()
    rnd = random.Random()
    for _ in range(200):
        net = ipaddress.IPv4Network(f"10.{rnd.randrange(160, 230)}.{rnd.randrange(0, 32) * 8}.0/21")
        if not any(net.overlaps(u) for u in used):
            return f"{net.network_address + 1}/21"
    raise RuntimeError("no free /21 found")


class SoakDaemon(PyDockerd):
    """run_bench's PyDockerd on our own base, with a daemon.json and restarts."""

    config: dict = {}
    profile: str = ""        # write a cProfile of each daemon run to <profile>-<n>.prof
    runs = 0

    def write_config(self) -> None:
        (self.base / "daemon.json").write_text(json.dumps(self.config) + "\n")

    def start(self) -> None:
        self.prepare_base()
        self.write_config()
        self.launch()

    def launch(self) -> float:
        """Start the daemon on the existing base; seconds from exec to the first /_ping 200."""
        self.runs += 1
        prof = ["-m", "cProfile", "-o", f"{self.profile}-{self.runs}.prof"] if self.profile else []
        argv = [sys.executable, *prof, "-m", "pydockerd", "-H", self.host,
                "--data-root", str(self.base / "data"), "--exec-root", str(self.base / "exec"),
                "--pidfile", str(self.base / "daemon.pid"), "-b", self.bridge, "--bip", self.subnet,
                "--iptables=false", "--ip-forward=false",
                "--config-file", str(self.base / "daemon.json")]
        env = dict(os.environ, PYTHONPATH=str(rb.ROOT / "src"))
        logf = open(self.log_path, "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdout=logf, stderr=logf, env=env,
                                     start_new_session=True, cwd=str(self.base))
        deadline = time.time() + 300
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pydockerd exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                st, _ = self.api("GET", "/_ping", timeout=5)
                if st == 200:
                    return time.perf_counter() - t0
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"pydockerd did not answer /_ping:\n{self.log_tail()}")

    # a keep-alive API connection (re-opened on error)
    _conn: UnixHTTPConnection | None = None

    def api(self, method: str, path: str, body: object = None, timeout: float = 120
            ) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        c = UnixHTTPConnection(self.sock, timeout=timeout)
        try:
            c.request(method, path, body=data, headers=headers)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def must_api(self, method: str, path: str, body: object = None, ok: tuple[int, ...] = (200, 201, 204, 304)
                 ) -> bytes:
        st, out = self.api(method, path, body)
        if st not in ok:
            raise RuntimeError(f"{method} {path}: HTTP {st}: {out[:300]!r}")
        return out

    stop_wait = 300         # a shutdown stopping 1,000 containers takes a while

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def mem(self) -> dict[str, float]:
        m = proc_mem(self.pid())
        m["conmon_pss"] = sum(proc_mem(p)["pss"] for p in self.engine_pids()["conmon"])
        return m

    def rm_all(self, workers: int = 4) -> None:
        ids = json.loads(self.must_api("GET", "/containers/json?all=1"))
        with cf.ThreadPoolExecutor(workers) as ex:
            list(ex.map(lambda c: self.api("DELETE", f"/containers/{c['Id']}?force=1&v=1"), ids))


def fmt_mem(m: dict[str, float]) -> str:
    s = f"rss {m['rss']:6.1f}  hwm {m['hwm']:6.1f}  pss {m['pss']:6.1f}"
    if "conmon_pss" in m:
        s += f"  conmons pss {m['conmon_pss']:6.1f}"
    return s


def timed_cli(d: SoakDaemon, *args: str, timeout: float = 1800) -> float:
    t0 = time.perf_counter()
    d.must(*args, timeout=timeout)
    return time.perf_counter() - t0


def median_ps(d: SoakDaemon, *args: str, n: int = 3) -> float:
    return statistics.median(timed_cli(d, "ps", "-q", *args) for _ in range(n))


def median_api(d: SoakDaemon, path: str, n: int = 3) -> float:
    def one() -> float:
        t0 = time.perf_counter()
        d.must_api("GET", path)
        return time.perf_counter() - t0
    return statistics.median(one() for _ in range(n))


# --------------------------------------------------------------------------- phases

def create_start(d: SoakDaemon, cmd: list[str]) -> str:
    out = d.must_api("POST", "/containers/create", {"Image": "busybox", "Cmd": cmd})
    cid = json.loads(out)["Id"]
    d.must_api("POST", f"/containers/{cid}/start")
    return cid


def heavy_ops(d: SoakDaemon, reg: Registry, i: int, busybox_tar: Path, ctx: Path) -> None:
    """One load, build, push and pull (the pushed image is removed and pulled back)."""
    d.must("load", "-i", str(busybox_tar))
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN echo {i} > /soak\nCOPY f /f\n")
    (ctx / "f").write_text(f"soak {i}\n" * 100)
    ref = f"{reg.host}/soak/img{i}:latest"
    d.must("build", "-q", "-t", ref, str(ctx))
    d.must("push", ref)
    d.must("rmi", ref)
    d.must("pull", ref)
    d.must("rmi", ref)


def phase_soak(d: SoakDaemon, reg: Registry, args: argparse.Namespace, work: Path, res: dict) -> None:
    busybox_tar = work / "busybox.tar"
    ctx = work / "ctx"
    ctx.mkdir(exist_ok=True)
    every_op = max(1, args.cycles // max(1, args.ops))
    curve = []
    log(f"soak: {args.cycles} create/start/stop/rm cycles, {args.ops} load+build+push+pull")
    print(f"\n== soak ({args.cycles} cycles, {args.ops} load/build/push/pull), MiB")
    print(f"{'cycle':>6} {'ops':>4} {'s':>7}  memory")
    t_start = time.perf_counter()
    ops = 0
    for i in range(1, args.cycles + 1):
        cid = create_start(d, ["sleep", "60"])
        d.must_api("POST", f"/containers/{cid}/stop?t=0")
        d.must_api("DELETE", f"/containers/{cid}")
        if ops < args.ops and i % every_op == 0:
            heavy_ops(d, reg, i, busybox_tar, ctx)
            ops += 1
        if i == 1 or i % args.sample_every == 0 or i == args.cycles:
            m = d.mem()
            m.update(cycle=i, ops=ops, seconds=time.perf_counter() - t_start)
            curve.append(m)
            print(f"{i:>6} {ops:>4} {m['seconds']:>7.1f}  {fmt_mem(m)}", flush=True)
    first, last = curve[0], curve[-1]
    res["soak"] = {"curve": curve, "rss_growth_mib": last["rss"] - first["rss"],
                   "pss_growth_mib": last["pss"] - first["pss"]}
    print(f"RSS after cycle 1: {first['rss']:.1f} MiB, at the end: {last['rss']:.1f} MiB "
          f"(growth {last['rss'] - first['rss']:+.1f} MiB; target <= 15)")


def phase_big(d: SoakDaemon, reg: Registry, args: argparse.Namespace, work: Path, res: dict) -> None:
    tar = work / "big.tar"
    log(f"big: building the {args.big_mb} MB test image")
    rb.build_test_image("big", tar, "--size-mb", str(args.big_mb))
    reset_hwm(d.pid())
    print(f"\n== big layer ({args.big_mb} MB): daemon max VmRSS during each step, MiB")
    ref = f"{reg.host}/soak/big:latest"
    steps: dict[str, dict] = {}

    def step(name: str, *cli: str) -> None:
        with Sampler(d.pid()) as s:
            dt = timed_cli(d, *cli)
        m = d.mem()
        steps[name] = {"seconds": dt, "max_rss": s.max_rss, **m}
        print(f"{name:>5} {dt:7.1f} s  max rss {s.max_rss:6.1f}  after: {fmt_mem(m)}", flush=True)

    try:
        step("load", "load", "-i", str(tar))
        tar.unlink()
        step("save", "save", "-o", str(work / "big-out.tar"), "big:latest")
        (work / "big-out.tar").unlink()
        d.must("tag", "big:latest", ref)
        step("push", "push", ref)
        d.must("rmi", "-f", "big:latest", ref)
        d.must("image", "prune", "-af")
        step("pull", "pull", ref)
        d.must("rmi", "-f", ref)
        d.must("load", "-i", str(work / "busybox.tar"))   # prune -af removed it
    finally:
        for p in (tar, work / "big-out.tar"):
            p.unlink(missing_ok=True)
    peak = max(s["max_rss"] for s in steps.values())
    res["big"] = {"size_mb": args.big_mb, "steps": steps, "max_rss": peak,
                  "hwm": proc_mem(d.pid())["hwm"]}
    print(f"peak daemon RSS over the phase: {peak:.1f} MiB (VmHWM {res['big']['hwm']:.1f}; "
          "target < 100)")


def phase_scale(d: SoakDaemon, args: argparse.Namespace, res: dict) -> None:
    n = args.containers
    curve = []
    starts: list[float] = []
    log(f"scale: {n} running containers, curve every {args.scale_step}")
    print("\n== scale (running busybox sleep containers), MiB and ms")
    print(f"{'n':>5} {'start':>7} {'ps':>7} {'ps -a':>7} {'GET /containers/json':>8}  memory")

    def point(k: int) -> None:
        m = d.mem()
        m.update(n=k, ps_ms=median_ps(d) * 1000, ps_a_ms=median_ps(d, "-a") * 1000,
                 api_ms=median_api(d, "/containers/json") * 1000,
                 start_ms=(statistics.median(starts[-10:]) * 1000 if starts else 0.0))
        curve.append(m)
        print(f"{k:>5} {m['start_ms']:>7.0f} {m['ps_ms']:>7.0f} {m['ps_a_ms']:>7.0f} "
              f"{m['api_ms']:>20.0f}  {fmt_mem(m)}",
              flush=True)

    point(0)
    for k in range(1, n + 2):
        t0 = time.perf_counter()
        create_start(d, ["sleep", "86400"])
        starts.append(time.perf_counter() - t0)
        if k % args.scale_step == 0 or k == n:
            point(k)
    first10 = statistics.median(starts[:10])
    res["scale"] = {"curve": curve, "starts": starts, "first10_median_s": first10,
                    "last_start_s": starts[-1],
                    "last10_median_s": statistics.median(starts[-10:])}
    print(f"start (create+start over the API): first 10 median {first10 * 1000:.0f} ms, "
          f"#{n + 1} {starts[-1] * 1000:.0f} ms, last 10 median "
          f"{res['scale']['last10_median_s'] * 1000:.0f} ms (target: within +20%)")


def wait_settled(d: SoakDaemon, timeout: float = 600) -> float:
    """Seconds until GET /containers/json lists no running container."""
    t0 = time.perf_counter()
    while json.loads(d.must_api("GET", "/containers/json")):
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError("containers still running after the daemon start")
        time.sleep(0.1)
    return time.perf_counter() - t0


def start_all(d: SoakDaemon, workers: int = 4) -> None:
    ids = [c["Id"] for c in json.loads(d.must_api("GET", "/containers/json?all=1"))]
    with cf.ThreadPoolExecutor(workers) as ex:
        list(ex.map(lambda cid: d.must_api("POST", f"/containers/{cid}/start"), ids))


def states(d: SoakDaemon) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in json.loads(d.must_api("GET", "/containers/json?all=1")):
        out[c["State"]] = out.get(c["State"], 0) + 1
    return out


def phase_restart(d: SoakDaemon, args: argparse.Namespace, res: dict) -> None:
    n_run = len(json.loads(d.must_api("GET", "/containers/json")))
    print(f"\n== restart with {n_run} running (shutdown-timeout "
          f"{d.config.get('shutdown-timeout', 15)}), seconds")
    out: dict = {"running": n_run}
    t0 = time.perf_counter()
    d.stop()
    stop_s = time.perf_counter() - t0
    ping_s = d.launch()
    listed_running = len(json.loads(d.must_api("GET", "/containers/json")))
    settle_s = wait_settled(d)
    out["graceful"] = {"stop_s": stop_s, "ping_s": ping_s, "running_at_ping": listed_running,
                       "settle_s": settle_s, "states": states(d)}
    print(f"SIGTERM: shutdown {stop_s:5.1f} s; start -> first /_ping {ping_s:5.2f} s, "
          f"{listed_running} listed running then, none after {settle_s:5.2f} s; "
          f"states {out['graceful']['states']}", flush=True)
    log(f"restart: starting the {n_run} containers again")
    start_all(d)
    assert d.proc is not None
    d.proc.kill()
    d.proc.wait()
    d.proc = None
    ping_s = d.launch()
    listed_running = len(json.loads(d.must_api("GET", "/containers/json")))
    settle_s = wait_settled(d)
    out["crash"] = {"ping_s": ping_s, "running_at_ping": listed_running, "settle_s": settle_s,
                    "states": states(d)}
    print(f"SIGKILL: start -> first /_ping {ping_s:5.2f} s (target < 2), {listed_running} "
          f"listed running then, none after {settle_s:5.2f} s; states "
          f"{out['crash']['states']}", flush=True)
    res["restart"] = out
    start_all(d)            # as `scale` left them, for the phases after this one


def phase_startup(d: SoakDaemon, args: argparse.Namespace, work: Path, res: dict) -> None:
    ctx = work / "imgctx"
    ctx.mkdir(exist_ok=True)
    have = len(json.loads(d.must_api("GET", "/images/json")))
    log(f"startup: building {max(0, args.images - have)} images (COPY of a small file)")
    for i in range(have, args.images):
        (ctx / "Dockerfile").write_text("FROM busybox\nCOPY f /f\n")
        (ctx / "f").write_text(f"image {i}\n")
        d.must("build", "-q", "-t", f"soakimg{i}", str(ctx))
    n_ct = len(json.loads(d.must_api("GET", "/containers/json?all=1")))
    n_run = len(json.loads(d.must_api("GET", "/containers/json")))
    n_img = len(json.loads(d.must_api("GET", "/images/json")))
    print(f"\n== start-up: {n_ct} containers ({n_run} running), {n_img} images")
    out: dict = {"containers": n_ct, "running": n_run, "images": n_img}
    for live in (True, False):
        d.config = {**d.config, "live-restore": live}
        d.write_config()
        # reload so the shutdown honours the new live-restore setting
        os.kill(d.pid(), signal.SIGHUP)
        time.sleep(1)
        t0 = time.perf_counter()
        d.stop()
        stop_s = time.perf_counter() - t0
        secs = [d.launch()]
        m = d.mem()
        running = len(json.loads(d.must_api("GET", "/containers/json")))
        key = "live_restore" if live else "no_live_restore"
        out[key] = {"stop_s": stop_s, "ping_s": secs[0], "running_after": running, **m}
        print(f"{key:>16}: stop {stop_s:5.1f} s, exec -> first /_ping {secs[0]:5.2f} s "
              f"(target < 2), running after {running}; {fmt_mem(m)}", flush=True)
    # the shutdown above stopped them all: a start with 1,000 exited containers
    d.stop()
    secs = d.launch()
    m = d.mem()
    out["stopped"] = {"ping_s": secs, **m}
    print(f"{'all stopped':>16}: exec -> first /_ping {secs:5.2f} s (target < 2); {fmt_mem(m)}",
          flush=True)
    res["startup"] = out


# --------------------------------------------------------------------------- main

def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phases", default="soak,big,scale,restart,startup")
    ap.add_argument("--cycles", type=int, default=2000)
    ap.add_argument("--ops", type=int, default=20, help="load+build+push+pull rounds in the soak")
    ap.add_argument("--sample-every", type=int, default=100)
    ap.add_argument("--big-mb", type=int, default=2048)
    ap.add_argument("--containers", type=int, default=1000)
    ap.add_argument("--scale-step", type=int, default=100)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--shutdown-timeout", type=int, default=None,
                    help="the daemon's shutdown-timeout (daemon.json); its default when unset")
    ap.add_argument("--output", default=str(HERE / "results-soak.json"))
    ap.add_argument("--profile", default="", metavar="PREFIX",
                    help="run the daemon under cProfile, writing PREFIX-<n>.prof per daemon run")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root (the daemon needs it)", file=sys.stderr)
        return 2
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    signal.signal(signal.SIGTERM, _interrupt)
    base = Path(f"/tmp/soak-{os.getpid()}")
    work = Path(tempfile.mkdtemp(prefix="soak-work-"))
    d = SoakDaemon("pydockerd", base, f"soakpyd{random.randrange(16 ** 6):06x}", free_subnet21())
    d.profile = args.profile
    if args.shutdown_timeout is not None:
        d.config = {"shutdown-timeout": args.shutdown_timeout}
    reg = Registry(work / "registry")
    res: dict = {"args": vars(args)}
    try:
        if {"soak", "big"} & set(phases):
            reg.start()
        d.start()
        rb.build_test_image("busybox", work / "busybox.tar")
        d.must("load", "-i", str(work / "busybox.tar"))
        m = d.mem()
        res["idle"] = m
        print(f"idle after loading busybox: {fmt_mem(m)} (target rss <= 30)")
        for p in phases:
            {"soak": lambda: phase_soak(d, reg, args, work, res),
             "big": lambda: phase_big(d, reg, args, work, res),
             "scale": lambda: phase_scale(d, args, res),
             "restart": lambda: phase_restart(d, args, res),
             "startup": lambda: phase_startup(d, args, work, res)}[p]()
        res["errors"] = []
    except BaseException as e:
        log(f"aborted: {e!r}")
        res["errors"] = [repr(e)]
        raise
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        Path(args.output).write_text(json.dumps(res, indent=1) + "\n")
        log(f"cleaning up (results in {args.output})")
        try:
            if d.proc is not None and d.proc.poll() is None:
                d.rm_all()
        except Exception as e:
            log(f"rm of the containers failed: {e}")
        try:
            shutil.copy(d.log_path, HERE / "results-soak.log")
        except OSError:
            pass
        try:
            d.cleanup()
        except Exception as e:
            log(f"daemon cleanup failed: {e}")
        rb.umount_under(base)
        shutil.rmtree(base, ignore_errors=True)
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
