#!/usr/bin/env python3
"""pydockerd vs real dockerd, side by side in one run, printed as ratios.

    python3 bench/run_bench.py [--runs N] [--containers 100] [--skip-dockerd]
                               [--cases exec,run,...]

Both daemons run at the same time, each on its own socket, data root, exec
root, bridge and subnet, and both are driven by the same docker CLI
(/usr/local/bin/docker, CLI 28).  The real dockerd is Debian's `docker.io`
(dockerd 20.10) with a containerd of its own that this script starts (own
root, state and socket, so it never meets a system containerd).  Neither
daemon touches iptables (--iptables=false --ip-forward=false).

Everything the run creates (daemons, containerd, shims, conmons, bridges,
mounts, data roots, cgroup parent) is torn down in a finally block.

Results go to stdout as a table and to bench/results-latest.json.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import http.client
import ipaddress
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from apifloor import FloorServer, UnixHTTPConnection, get_seconds  # noqa: E402
from clifloor import CliFloorStub  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent                        # the repository: the daemon and test images come from src/
DOCKER_CLI = "/usr/local/bin/docker"      # CLI 28, for both daemons (never /usr/bin/docker)

PYD_BASE = Path("/tmp/bench-pydockerd")
DD_BASE = Path("/tmp/bench-dockerd")
PYD_BRIDGE = "benchpyd0"
DD_BRIDGE = "benchdocker0"
DD_CGROUP_PARENT = "benchdockerd"

# host paths a dockerd/containerd may create outside its roots; removed at the
# end only if they did not exist before the run (and only if empty / ours)
HOST_PATHS_WATCHED = ["/run/containerd/s", "/run/containerd", "/etc/docker/key.json",
                      "/var/lib/docker", "/var/lib/containerd", "/run/docker/plugins", "/run/docker",
                      "/opt/containerd"]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- helpers

def run(argv: list[str], check: bool = False, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def host_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host routes or has an address in."""
    used: list[ipaddress.IPv4Network] = []
    for route in json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]"):
        dst = route.get("dst", "")
        if dst and dst != "default":
            try:
                used.append(ipaddress.IPv4Network(dst, strict=False))
            except ValueError:
                pass
    for link in json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]"):
        for info in link.get("addr_info", []):
            used.append(ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}").network)
    return used


def free_subnets(n: int) -> list[str]:
    """n /24s in 10.0.0.0/8 that nothing on the host routes or addresses."""
    used = host_networks()
    out = []
    for b in range(231, 250):          # a block the tests' random picks (10.100-250.x) rarely hit
        for c in (77, 78, 79, 80, 81):
            net = ipaddress.IPv4Network(f"10.{b}.{c}.0/24")
            if not any(net.overlaps(u) for u in used):
                out.append(f"10.{b}.{c}.1/24")
                if len(out) == n:
                    return out
    raise RuntimeError("no free /24 found")


def link_exists(name: str) -> bool:
    return run(["ip", "link", "show", "dev", name]).returncode == 0


def is_root() -> bool:
    """The daemons need root; says so when not."""
    if os.geteuid() != 0:
        print("run as root (the daemons need it)", file=sys.stderr)
        return False
    return True


def dockerd_wanted(skip_dockerd: bool) -> bool:
    """Whether to benchmark dockerd beside pydockerd: not skipped and installed."""
    if skip_dockerd:
        return False
    if not (shutil.which("dockerd") and shutil.which("containerd")):
        log("dockerd/containerd not installed (Debian docker.io): benchmarking pydockerd alone")
        return False
    return True


def stale_bridge(*bridges: str) -> bool:
    """Whether one of the bench's bridges is left from an earlier run (says which)."""
    for br in bridges:
        if link_exists(br):
            print(f"bridge {br} already exists (stale from an earlier run?); "
                  f"delete it with: ip link del {br}", file=sys.stderr)
            return True
    return False


def proc_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def proc_comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def mem_kib(pid: int) -> tuple[int, int]:
    """(Pss, Rss) in KiB from smaps_rollup (Rss from status if rollup is missing)."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
        return pss, rss
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return rss, rss


def umount_under(base: Path) -> None:
    """Lazily unmount every mount at or below base, deepest first."""
    prefix = str(base)
    mounts = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].encode().decode("unicode_escape")
                if mp == prefix or mp.startswith(prefix + "/"):
                    mounts.append(mp)
    except OSError:
        return
    for mp in sorted(set(mounts), key=len, reverse=True):
        run(["umount", "-l", mp])


# --------------------------------------------------------------------------- daemons

@dataclass
class Engine:
    name: str
    base: Path
    bridge: str
    subnet: str
    proc: subprocess.Popen | None = None
    helper_procs: list[subprocess.Popen] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    keepalive: UnixHTTPConnection | None = None     # api_get_keepalive's one connection

    @property
    def sock(self) -> str:
        return str(self.base / "docker.sock")

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    @property
    def log_path(self) -> Path:
        return self.base / "daemon.log"

    def env(self) -> dict:
        env = dict(os.environ, DOCKER_HOST=self.host, DOCKER_CONFIG=str(self.base / "cli"))
        env.pop("DOCKER_CONTEXT", None)
        env.pop("DOCKER_TLS_VERIFY", None)
        return env

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([DOCKER_CLI, *args], capture_output=True, text=True,
                              env=self.env(), timeout=timeout, stdin=subprocess.DEVNULL)

    def must(self, *args: str, timeout: float = 120) -> str:
        r = self.cli(*args, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{self.name}: docker {' '.join(args)} failed "
                               f"({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def timed(self, *args: str, timeout: float = 120) -> float | None:
        """Seconds the CLI call took, or None (error recorded) if it failed."""
        t0 = time.perf_counter()
        try:
            r = self.cli(*args, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.note_error(f"docker {' '.join(args)}: timed out after {timeout}s")
            return None
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            self.note_error(f"docker {' '.join(args)} ({r.returncode}): {r.stderr.strip()}")
            return None
        return dt

    def api_body(self, path: str) -> bytes:
        c = UnixHTTPConnection(self.sock)
        try:
            c.request("GET", path)
            return c.getresponse().read()
        finally:
            c.close()

    def api_get(self, path: str) -> float | None:
        t0 = time.perf_counter()
        try:
            c = UnixHTTPConnection(self.sock)
            c.request("GET", path)
            resp = c.getresponse()
            resp.read()
            c.close()
        except OSError as e:
            self.note_error(f"GET {path}: {e}")
            return None
        if resp.status != 200:
            self.note_error(f"GET {path}: HTTP {resp.status}")
            return None
        return time.perf_counter() - t0

    def api_get_keepalive(self, path: str) -> float | None:
        """As api_get, on one persistent connection per engine (opened by the first
        call, timed from the second: a warm-up run opens it)."""
        t0 = time.perf_counter()
        try:
            if self.keepalive is None:
                self.keepalive = UnixHTTPConnection(self.sock)
            c = self.keepalive
            c.request("GET", path)
            resp = c.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException) as e:
            self.note_error(f"GET {path} (keep-alive): {e}")
            self.close_keepalive()
            return None
        if resp.status != 200:
            self.note_error(f"GET {path} (keep-alive): HTTP {resp.status}")
            return None
        if resp.will_close:
            self.close_keepalive()
        return time.perf_counter() - t0

    def close_keepalive(self) -> None:
        if self.keepalive is not None:
            self.keepalive.close()
            self.keepalive = None

    def note_error(self, msg: str) -> None:
        log(f"  {self.name} ERROR: {msg}")
        self.errors.append(msg)

    def wait_up(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n{self.log_tail()}")
            if os.path.exists(self.sock):
                r = self.cli("version", "--format", "{{.Server.Version}}", timeout=10)
                if r.returncode == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not come up:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def prepare_base(self) -> None:
        if self.base.exists():
            pidfile = self.base / "daemon.pid"
            if pidfile.exists():
                try:
                    pid = int(pidfile.read_text().strip() or 0)
                except ValueError:
                    pid = 0
                if pid and pid_alive(pid) and str(self.base) in proc_cmdline(pid):
                    raise RuntimeError(f"a daemon (pid {pid}) still runs under {self.base}; "
                                       "another bench running? stop it first")
            log(f"removing stale {self.base} from an earlier run")
            umount_under(self.base)
            shutil.rmtree(self.base, ignore_errors=True)
        (self.base / "cli").mkdir(parents=True)
        (self.base / "daemon.json").write_text("{}\n")

    # processes whose memory counts as "the engine": overridden per engine
    def engine_pids(self) -> dict[str, list[int]]:
        raise NotImplementedError

    def zombie_children(self) -> int:
        """Children of the daemon that exited and were never reaped."""
        if self.proc is None:
            return 0
        n = 0
        for p in all_pids():
            try:
                with open(f"/proc/{p}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] == "Z" and int(fields[1]) == self.proc.pid:
                n += 1
        return n

    def memory(self) -> dict:
        groups = self.engine_pids()
        out: dict = {"pss_kib": 0, "rss_kib": 0, "zombie_children": self.zombie_children(),
                     "groups": {}}
        for g, pids in groups.items():
            pss = rss = 0
            for p in pids:
                a, b = mem_kib(p)
                pss += a
                rss += b
            out["groups"][g] = {"count": len(pids), "pss_kib": pss, "rss_kib": rss}
            out["pss_kib"] += pss
            out["rss_kib"] += rss
        return out


class PyDockerd(Engine):
    def start(self) -> None:
        self.prepare_base()
        argv = [sys.executable, "-m", "pydockerd", "-H", self.host,
                "--data-root", str(self.base / "data"), "--exec-root", str(self.base / "exec"),
                "--pidfile", str(self.base / "daemon.pid"), "-b", self.bridge, "--bip", self.subnet,
                "--iptables=false", "--ip-forward=false",
                "--config-file", str(self.base / "daemon.json")]
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        logf = open(self.log_path, "ab")
        log(f"starting pydockerd: {' '.join(argv)}")
        self.proc = subprocess.Popen(argv, stdout=logf, stderr=logf, env=env,
                                     start_new_session=True, cwd=str(self.base))
        self.wait_up()

    def engine_pids(self) -> dict[str, list[int]]:
        pids: dict[str, list[int]] = {"pydockerd": [], "conmon": []}
        if self.proc and self.proc.poll() is None:
            pids["pydockerd"].append(self.proc.pid)
        for p in all_pids():
            if proc_comm(p) == "conmon" and str(self.base) in proc_cmdline(p):
                pids["conmon"].append(p)
        return pids

    stop_wait = 30          # seconds a SIGTERM may take before the kill

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.stop_wait)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop within {self.stop_wait} s: killing it")
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        runc_root = self.base / "exec" / "runc"
        if runc_root.is_dir():
            for cid in os.listdir(runc_root):
                run(["runc", "--root", str(runc_root), "delete", "-f", cid])
        kill_by_cmdline(self.base, ("conmon",))
        netns = self.base / "exec" / "netns"
        if netns.is_dir():
            for f in os.listdir(netns):
                run(["umount", "-l", str(netns / f)])
        umount_under(self.base)
        # --iptables=false: there should be no chains, but remove ours if any exist
        chain = f"PYDOCKER-{self.bridge}"
        for table in ("filter", "nat"):
            rules = run(["iptables", "-t", table, "-S"]).stdout
            for line in rules.splitlines():
                if line.startswith("-A ") and f"-j {chain}" in line:
                    run(["iptables", "-t", table, "-D", *line.split()[1:]])
            if f"-N {chain}" in rules:
                run(["iptables", "-t", table, "-F", chain])
                run(["iptables", "-t", table, "-X", chain])
        if link_exists(self.bridge):
            run(["ip", "link", "del", "dev", self.bridge])


class RealDockerd(Engine):
    cgroup_parent = DD_CGROUP_PARENT

    @property
    def ctrd_dir(self) -> Path:
        return self.base / "containerd"

    @property
    def ctrd_sock(self) -> str:
        return str(self.ctrd_dir / "containerd.sock")

    def start(self) -> None:
        self.prepare_base()
        # dockerd -b needs an existing bridge and refuses -b together with --bip:
        # make the bridge ourselves, with the subnet on it.
        if link_exists(self.bridge):
            raise RuntimeError(f"bridge {self.bridge} already exists (stale from an earlier run?); "
                               f"delete it with: ip link del {self.bridge}")
        run(["ip", "link", "add", "name", self.bridge, "type", "bridge"])
        self.created_bridge = True
        for cmd in (["ip", "addr", "add", self.subnet, "dev", self.bridge],
                    ["ip", "link", "set", "dev", self.bridge, "up"]):
            r = run(cmd)
            if r.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")

        # our own containerd: own root/state/sockets, CRI and /opt plugin off
        self.ctrd_dir.mkdir()
        d = self.ctrd_dir
        (d / "config.toml").write_text(f"""version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{self.ctrd_sock}"
[ttrpc]
  address = "{self.ctrd_sock}.ttrpc"
[debug]
  address = "{d}/debug.sock"
  level = "warn"
[metrics]
  address = ""
""")
        ctrd_log = open(self.base / "containerd.log", "ab")
        argv = ["containerd", "--config", str(d / "config.toml")]
        log(f"starting containerd: {' '.join(argv)}")
        cp = subprocess.Popen(argv, stdout=ctrd_log, stderr=ctrd_log, start_new_session=True)
        self.helper_procs.append(cp)
        deadline = time.time() + 30
        while not os.path.exists(self.ctrd_sock):
            if cp.poll() is not None or time.time() > deadline:
                raise RuntimeError("containerd did not come up:\n" +
                                   (self.base / "containerd.log").read_text(errors="replace")[-3000:])
            time.sleep(0.05)

        argv = ["dockerd", "-H", self.host, "--data-root", str(self.base / "data"),
                "--exec-root", str(self.base / "exec"), "--pidfile", str(self.base / "daemon.pid"),
                "--containerd", self.ctrd_sock, "-b", self.bridge,
                "--iptables=false", "--ip-forward=false", "--ip-masq=false",
                "--cgroup-parent", f"/{self.cgroup_parent}",
                "--storage-driver", "overlay2", "--log-level", "warn",
                "--config-file", str(self.base / "daemon.json")]
        logf = open(self.log_path, "ab")
        log(f"starting dockerd: {' '.join(argv)}")
        self.proc = subprocess.Popen(argv, stdout=logf, stderr=logf, start_new_session=True,
                                     cwd=str(self.base))
        self.wait_up()

    def engine_pids(self) -> dict[str, list[int]]:
        pids: dict[str, list[int]] = {"dockerd": [], "containerd": [], "containerd-shim": []}
        if self.proc and self.proc.poll() is None:
            pids["dockerd"].append(self.proc.pid)
        for cp in self.helper_procs:
            if cp.poll() is None:
                pids["containerd"].append(cp.pid)
        for p in all_pids():
            if proc_comm(p).startswith("containerd-shim") and self.ctrd_sock in proc_cmdline(p):
                pids["containerd-shim"].append(p)
        return pids

    def cleanup(self) -> None:
        for p in ([self.proc] if self.proc else []) + list(reversed(self.helper_procs)):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.proc = None
        self.helper_procs = []
        runc_root = self.base / "exec" / "runtime-runc" / "moby"
        if runc_root.is_dir():
            for cid in os.listdir(runc_root):
                run(["runc", "--root", str(runc_root), "delete", "-f", cid])
        kill_by_cmdline(self.ctrd_sock, ("containerd-shim",))
        umount_under(self.base)
        if getattr(self, "created_bridge", False) and link_exists(self.bridge):
            run(["ip", "link", "del", "dev", self.bridge])
        for ctl in os.listdir("/sys/fs/cgroup"):
            cg = Path("/sys/fs/cgroup") / ctl / self.cgroup_parent
            if cg.is_dir():
                # children first (per-container cgroups normally go with their containers)
                for sub in sorted((p for p in cg.rglob("*") if p.is_dir()),
                                  key=lambda p: len(str(p)), reverse=True):
                    try:
                        sub.rmdir()
                    except OSError:
                        pass
                try:
                    cg.rmdir()
                except OSError as e:
                    log(f"could not remove cgroup {cg}: {e}")


def kill_by_cmdline(marker: Path | str, comms: tuple[str, ...]) -> None:
    for p in all_pids():
        if any(proc_comm(p).startswith(c) for c in comms) and str(marker) in proc_cmdline(p):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass


# --------------------------------------------------------------------------- measurements

def build_test_image(name: str, out: Path, *args: str) -> None:
    """Build a test image of this checkout offline (python3 -m pydockerd.testing.images)."""
    r = subprocess.run([sys.executable, "-m", "pydockerd.testing.images", name, "-o", str(out),
                        *args], env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"building test image {name} failed: {r.stderr.strip()}")


def floor_seconds(sock: str, path: str) -> float | None:
    """One GET on the floor server (bench/apifloor.py); None when it failed, so that
    the engines' samples and the rest of the run go on without that floor sample."""
    try:
        return get_seconds(sock, path)
    except (OSError, http.client.HTTPException) as e:
        log(f"  floor server GET {path} failed: {e!r}")
        return None


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


class Bench:
    def __init__(self, engines: list[Engine], runs: int, containers: int, concurrency: int):
        self.engines = engines
        self.runs = runs
        self.containers = containers
        self.concurrency = concurrency
        self.metrics: list[dict] = []

    def add(self, name: str, unit: str, samples: dict[str, list[float]], scale: float = 1.0,
            note: str = "", single: dict[str, float | None] | None = None) -> None:
        row: dict = {"metric": name, "unit": unit, "note": note, "values": {}, "samples": {}}
        for e in self.engines:
            if single is not None:
                v = single.get(e.name)
                row["samples"][e.name] = [] if v is None else [v]
            else:
                xs = [x * scale for x in samples.get(e.name, []) if x is not None]
                row["samples"][e.name] = [round(x, 3) for x in xs]
                v = median(xs)
            row["values"][e.name] = None if v is None else round(v, 3)
        a, b = row["values"].get("pydockerd"), row["values"].get("dockerd")
        row["ratio"] = round(a / b, 3) if a is not None and b else None
        self.metrics.append(row)
        vals = ", ".join(f"{k}={v}" for k, v in row["values"].items())
        log(f"  => {name}: {vals} {unit}" + (f"  ratio {row['ratio']}" if row["ratio"] else ""))

    def interleaved(self, fn, warmup: int = 1) -> dict[str, list[float]]:
        """Run fn(engine) -> seconds|None, alternating engines, after warm-up runs."""
        out: dict[str, list[float]] = {e.name: [] for e in self.engines}
        for _ in range(warmup):
            for e in self.engines:
                fn(e)
        for i in range(self.runs):
            order = self.engines if i % 2 == 0 else list(reversed(self.engines))
            for e in order:
                v = fn(e)
                if v is not None:
                    out[e.name].append(v)
        return out

    def rm_all(self, e: Engine) -> None:
        ids = e.cli("ps", "-aq").stdout.split()
        for i in range(0, len(ids), 20):
            e.cli("rm", "-f", *ids[i:i + 20], timeout=300)

    # ------------------------------------------------------------------ single-op metrics

    def bench_run_rm(self) -> None:
        log("docker run --rm busybox true")
        s = self.interleaved(lambda e: e.timed("run", "--rm", "busybox", "true"))
        self.add("run --rm busybox true", "ms", s, 1000)
        log("docker run --rm --network none busybox true")
        s = self.interleaved(lambda e: e.timed("run", "--rm", "--network", "none", "busybox", "true"))
        self.add("run --rm --network none busybox true", "ms", s, 1000)

    def ps_with_floor(self, body: bytes, warmup: int = 1) -> tuple[dict[str, list[float]], str]:
        """`docker ps` on each engine, and, at the same moments, against a stub that
        answers at once with `body` (bench/clifloor.py): the CLI's own floor."""
        stub, floor = CliFloorStub(body=body), []

        def ps_and_floor(e: Engine) -> float | None:
            floor.append(stub.timed_ps(DOCKER_CLI, e.env()))
            return e.timed("ps")
        try:
            samples = self.interleaved(ps_and_floor, warmup=warmup)
        finally:
            stub.close()
        floor_ms = median([x * 1000 for x in floor if x is not None])
        base = median([x * 1000 for x in samples.get("dockerd", [])])
        if floor_ms is None:
            return samples, ""
        note = (f"the CLI alone, against a stub answering the same list at once "
                f"(bench/clifloor.py): {floor_ms:.1f} ms")
        if base:
            note += f" = {floor_ms / base:.2f}x dockerd, the lowest ratio any daemon can reach"
        return samples, note

    def api_with_floor(self, path: str) -> tuple[dict[str, list[float]], str]:
        """GET path on a new connection from each engine, and at the same moments from
        a minimal asyncio server answering pydockerd's bytes at once (bench/apifloor.py):
        what any asyncio daemon pays per connection before doing any work."""
        floor_srv, floor = FloorServer("asyncio"), []

        def get_and_floor(e: Engine) -> float | None:
            floor.append(floor_seconds(floor_srv.sock, path))
            return e.api_get(path)
        try:
            samples = self.interleaved(get_and_floor, warmup=3)
        finally:
            floor_srv.close()
        floor = floor[3 * len(self.engines):]          # not the warm-up runs
        floor_ms = median([x * 1000 for x in floor if x is not None])
        base = median([x * 1000 for x in samples.get("dockerd", [])])
        if floor_ms is None:
            return samples, ""
        note = f"; an asyncio Protocol answering the same bytes at once (bench/apifloor.py): {floor_ms:.3f} ms"
        if base:
            note += f" = {floor_ms / base:.2f}x dockerd"
        return samples, note

    def bench_list_empty(self) -> None:
        """`docker ps`, `ps -a` and GET /containers/json with no container at all."""
        log("docker ps / ps -a / GET /containers/json with 0 containers")
        for e in self.engines:
            self.rm_all(e)
        samples, note = self.ps_with_floor(b"[]\n")
        self.add("docker ps (0 containers)", "ms", samples, 1000, note=note)
        self.add("docker ps -a (0 containers)", "ms",
                 self.interleaved(lambda e: e.timed("ps", "-a")), 1000)
        samples, note = self.api_with_floor("/containers/json?all=1")
        self.add("API GET /containers/json?all=1 (0 containers)", "ms", samples, 1000,
                 note="raw HTTP on the unix socket, a new connection per request" + note)
        self.add("API GET /containers/json?all=1 (0 containers, keep-alive)", "ms",
                 self.interleaved(lambda e: e.api_get_keepalive("/containers/json?all=1"),
                                  warmup=3), 1000,
                 note="raw HTTP on the unix socket, one persistent connection per engine")
        for e in self.engines:
            e.close_keepalive()

    def concurrent_runs(self, e: Engine, n: int) -> float | None:
        """Wall seconds for n `docker run --rm busybox true` started at once."""
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(n) as pool:
            results = list(pool.map(lambda _: e.cli("run", "--rm", "busybox", "true", timeout=300),
                                    range(n)))
        dt = time.perf_counter() - t0
        failed = [r for r in results if r.returncode != 0]
        if failed:
            e.note_error(f"{len(failed)} of {n} concurrent runs failed: {failed[0].stderr.strip()}")
            return None
        return dt

    def bench_concurrent(self, n: int = 20) -> None:
        log(f"{n} concurrent docker run --rm busybox true")
        s = self.interleaved(lambda e: self.concurrent_runs(e, n))
        self.add(f"{n} concurrent run --rm busybox true: wall", "ms", s, 1000)

    def bench_lifecycle(self) -> None:
        log("create + start + stop -t 1 + rm (busybox sleep 1000)")
        steps = ("create", "start", "stop -t 1", "rm", "total")
        acc: dict[str, dict[str, list[float]]] = {s: {e.name: [] for e in self.engines} for s in steps}

        def one(e: Engine) -> float | None:
            name = f"bench-life-{e.name}"
            t = [e.timed("create", "--name", name, "busybox", "sleep", "1000")]
            t.append(e.timed("start", name) if t[0] is not None else None)
            t.append(e.timed("stop", "-t", "1", name) if t[1] is not None else None)
            t.append(e.timed("rm", "-f", name))
            if None in t:
                e.cli("rm", "-f", name)
                return None
            return t  # type: ignore[return-value]

        for _ in range(1):          # warm-up
            for e in self.engines:
                one(e)
        for i in range(self.runs):
            order = self.engines if i % 2 == 0 else list(reversed(self.engines))
            for e in order:
                t = one(e)
                if t is None:
                    continue
                for s, v in zip(steps, [*t, sum(t)]):
                    acc[s][e.name].append(v)
        for s in steps:
            note = "sleep as PID 1 ignores SIGTERM: both wait the 1 s grace, then SIGKILL" \
                if s.startswith("stop") else ""
            self.add(f"lifecycle: {s}", "ms", acc[s], 1000, note=note)

    def bench_exec(self) -> None:
        log("docker exec <ctr> true")
        for e in self.engines:
            e.must("run", "-d", "--name", f"bench-exec-{e.name}", "busybox", "sleep", "1000")
        try:
            s = self.interleaved(lambda e: e.timed("exec", f"bench-exec-{e.name}", "true"))
            self.add("exec <ctr> true", "ms", s, 1000)
        finally:
            for e in self.engines:
                e.cli("rm", "-f", f"bench-exec-{e.name}")

    def sanity(self) -> dict:
        """Same work on both sides? A container must get an address on its bridge and a
        memory cgroup of its own; otherwise the timings are not comparable."""
        out = {}
        for e in self.engines:
            r = e.cli("run", "--rm", "busybox", "sh", "-c",
                      "ip -4 -o addr show dev eth0; grep memory /proc/self/cgroup")
            net = ipaddress.IPv4Interface(e.subnet).network
            addrs = [w.split("/")[0] for w in r.stdout.split() if w.count(".") == 3 and "/" in w]
            ok_net = any(ipaddress.IPv4Address(a) in net for a in addrs)
            cg = [ln for ln in r.stdout.splitlines() if "memory" in ln]
            ok_cg = bool(cg) and not cg[0].rstrip().endswith(":/")
            out[e.name] = {"rc": r.returncode, "stdout": r.stdout, "stderr": r.stderr[-500:],
                           "address_on_bridge": ok_net, "own_memory_cgroup": ok_cg}
            log(f"sanity {e.name}: rc={r.returncode} address_on_bridge={ok_net} "
                f"own_memory_cgroup={ok_cg}")
            if not (r.returncode == 0 and ok_net and ok_cg):
                e.note_error(f"sanity check: container setup differs from expectations: {out[e.name]}")
        return out

    def bench_api_ping(self) -> None:
        log("API GET /_ping (no CLI)")
        s = self.interleaved(lambda e: e.api_get("/_ping"), warmup=3)
        self.add("API GET /_ping", "ms", s, 1000, note="raw HTTP on the unix socket")

    # ------------------------------------------------------------------ many containers

    def start_many(self, e: Engine) -> tuple[float, int]:
        names = [f"bench-many-{i}" for i in range(self.containers)]
        fails = 0
        t0 = time.perf_counter()
        pool = cf.ThreadPoolExecutor(self.concurrency)
        try:
            futs = {pool.submit(e.cli, "run", "-d", "--name", n, "busybox", "sleep", "1000",
                                timeout=300): n for n in names}
            for f in cf.as_completed(futs):
                try:
                    r = f.result()
                    if r.returncode != 0:
                        fails += 1
                        e.note_error(f"run -d {futs[f]} ({r.returncode}): {r.stderr.strip()}")
                except subprocess.TimeoutExpired:
                    fails += 1
                    e.note_error(f"run -d {futs[f]}: timed out after 300s")
        finally:        # on Ctrl-C / SIGTERM: do not start the queued runs
            pool.shutdown(wait=True, cancel_futures=True)
        return time.perf_counter() - t0, fails

    def remove_many(self, e: Engine) -> float:
        ids = e.cli("ps", "-aq").stdout.split()
        batches = [ids[i:i + 10] for i in range(0, len(ids), 10)]
        t0 = time.perf_counter()
        with cf.ThreadPoolExecutor(self.concurrency) as pool:
            for r in pool.map(lambda b: e.cli("rm", "-f", *b, timeout=300), batches):
                if r.returncode != 0:
                    e.note_error(f"rm -f (batch) ({r.returncode}): {r.stderr.strip()}")
        return time.perf_counter() - t0

    def bench_many(self) -> None:
        n = self.containers
        mem0: dict[str, dict] = {}
        mem1: dict[str, dict] = {}
        start_t: dict[str, float | None] = {}
        rm_t: dict[str, float | None] = {}
        running: dict[str, int] = {}
        for e in self.engines:
            self.rm_all(e)
        time.sleep(2)
        for e in self.engines:
            mem0[e.name] = e.memory()
            log(f"{e.name}: memory at 0 containers: {mem0[e.name]}")
        # start one engine at a time, so the other's startup storm does not disturb it
        for e in self.engines:
            log(f"{e.name}: starting {n} containers (concurrency {self.concurrency})")
            dt, fails = self.start_many(e)
            start_t[e.name] = dt * 1000 / n
            running[e.name] = len(e.cli("ps", "-q").stdout.split())
            log(f"{e.name}: {n} runs took {dt:.1f}s, {fails} failed, {running[e.name]} running")
            time.sleep(3)
            mem1[e.name] = e.memory()
            log(f"{e.name}: memory at {running[e.name]} containers: {mem1[e.name]}")
        # both hold their N containers now: interleave, so drift in host load hits both alike
        log(f"docker ps and GET /containers/json with {n} running, x{self.runs} each")
        ps, ps_note = self.ps_with_floor(self.engines[0].api_body("/containers/json"), warmup=2)
        ps_a = self.interleaved(lambda e: e.timed("ps", "-a"), warmup=1)
        ps_api = self.interleaved(lambda e: e.api_get("/containers/json"), warmup=2)
        ps_keep = self.interleaved(lambda e: e.api_get_keepalive("/containers/json"), warmup=2)
        for e in self.engines:
            e.close_keepalive()
        for e in self.engines:
            log(f"{e.name}: removing containers")
            rm_t[e.name] = self.remove_many(e) * 1000 / max(running[e.name], 1)
            left = e.cli("ps", "-aq").stdout.split()
            if left:
                e.note_error(f"{len(left)} containers left after rm -f; removing again")
                self.rm_all(e)
        self.add(f"docker ps ({n} running)", "ms", ps, 1000, note=ps_note)
        self.add(f"docker ps -a ({n} running)", "ms", ps_a, 1000)
        self.add(f"API GET /containers/json ({n} running)", "ms", ps_api, 1000,
                 note="raw HTTP on the unix socket, a new connection per request")
        self.add(f"API GET /containers/json ({n} running, keep-alive)", "ms", ps_keep, 1000,
                 note="raw HTTP on the unix socket, one persistent connection per engine")
        self.add(f"run -d x{n}, concurrency {self.concurrency}: wall per container", "ms", {},
                 single={k: (None if v is None else v) for k, v in start_t.items()})
        self.add(f"rm -f x{n} (batches of 10, concurrency {self.concurrency}): wall per container",
                 "ms", {}, single=rm_t)
        per_pss = {}
        per_rss = {}
        idle = {}
        for e in self.engines:
            k = max(running[e.name], 1)
            per_pss[e.name] = (mem1[e.name]["pss_kib"] - mem0[e.name]["pss_kib"]) / k
            per_rss[e.name] = (mem1[e.name]["rss_kib"] - mem0[e.name]["rss_kib"]) / k
            idle[e.name] = mem0[e.name]["pss_kib"] / 1024
        self.add("memory per running container (Pss)", "KiB", {}, single=per_pss,
                 note="(engine Pss @N - @0)/N; engine = daemon + containerd + shims | "
                      "pydockerd + conmons")
        self.add("memory per running container (Rss)", "KiB", {}, single=per_rss,
                 note="Rss double-counts shared pages across shims/conmons")
        self.add("engine memory at 0 containers (Pss)", "MiB", {}, single=idle)
        self.add(f"unreaped (zombie) children of the daemon with {n} running", "count", {},
                 single={e.name: mem1[e.name]["zombie_children"] for e in self.engines})
        self.memory_detail = {"at_0": mem0, "at_n": mem1, "running": running}


# --------------------------------------------------------------------------- output

def print_table(metrics: list[dict], names: list[str]) -> None:
    cols = ["metric", "unit", *names] + (["ratio pyd/dockerd"] if len(names) > 1 else [])
    rows = []
    for m in metrics:
        r = [m["metric"], m["unit"]]
        for n in names:
            v = m["values"].get(n)
            r.append("FAILED" if v is None else f"{v:.1f}" if v >= 1 else f"{v:.3f}")
        if len(names) > 1:
            r.append("-" if m["ratio"] is None else f"{m['ratio']:.2f}x")
        rows.append(r)
    widths = [max(len(str(x)) for x in col) for col in zip(cols, *rows)]
    line = "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cols, widths)))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths))))
    for m in metrics:
        if m["note"]:
            print(f"  * {m['metric']}: {m['note']}")


def daemon_log_problems(e: Engine, limit: int = 20) -> list[str]:
    try:
        lines = e.log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    keys = ("Traceback", "ERROR", "Error", "error", "level=error", "level=fatal", "CRITICAL")
    hits = [ln for ln in lines if any(k in ln for k in keys)]
    return hits[:limit]


def watch_host_paths() -> dict[str, bool]:
    """Which of HOST_PATHS_WATCHED exist now (call before starting any daemon)."""
    return {p: os.path.lexists(p) for p in HOST_PATHS_WATCHED}


def start_engine(e: "Engine") -> str:
    """Start the engine; its version line (logged)."""
    e.start()
    ver = e.must("version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})").strip()
    log(f"{e.name} up: {ver}")
    return ver


def record_fatal(result: dict, ex: BaseException) -> None:
    """What stopped a bench: its traceback printed, its message in the result."""
    import traceback
    traceback.print_exc()
    result["fatal"] = f"{type(ex).__name__}: {ex}"


def keep_log(e: "Engine", dest: Path) -> None:
    """A copy of the engine's daemon log beside the results (when there is one)."""
    try:
        shutil.copy(e.log_path, dest)
    except OSError:
        pass


def teardown(engines: list[Engine], watched_before: dict[str, bool], before_stop=None) -> None:
    """Stop and remove everything the engines made, then the host paths the run created.
    before_stop(engine), if given, runs first on each engine that is still up (e.g. rm -f of
    its containers); its failures are logged, never raised."""
    log("cleaning up")
    for e in engines:
        try:
            if before_stop is not None and e.proc is not None and e.proc.poll() is None:
                before_stop(e)
        except Exception as ex:
            log(f"{e.name}: pre-stop cleanup failed: {ex}")
        try:
            e.cleanup()
        except Exception as ex:
            log(f"{e.name}: cleanup failed: {ex}")
        umount_under(e.base)
        shutil.rmtree(e.base, ignore_errors=True)
    # host paths the run created (key.json, shim socket dir, ...): remove if ours and empty
    for p in HOST_PATHS_WATCHED:
        if not watched_before[p] and os.path.lexists(p):
            try:
                if os.path.isdir(p) and not os.path.islink(p):
                    os.rmdir(p)        # only if empty
                elif p.endswith("key.json"):
                    os.unlink(p)
                log(f"removed {p} (created by this run)")
            except OSError as ex:
                log(f"left {p} in place: {ex}")


# --cases names -> Bench methods, in the order they run
CASES = {"ping": "bench_api_ping", "list": "bench_list_empty", "run": "bench_run_rm",
         "concurrent": "bench_concurrent", "lifecycle": "bench_lifecycle", "exec": "bench_exec",
         "many": "bench_many"}


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="samples per metric (median reported)")
    ap.add_argument("--containers", type=int, default=100, help="containers for the ps/memory phase")
    ap.add_argument("--concurrency", type=int, default=4, help="parallel CLI calls when starting many")
    ap.add_argument("--skip-dockerd", action="store_true", help="benchmark pydockerd alone")
    ap.add_argument("--output", default=str(HERE / "results-latest.json"))
    ap.add_argument("--no-logs", action="store_true",
                    help="do not copy daemon logs to bench/results-<engine>.log")
    ap.add_argument("--cases", default=",".join(CASES),
                    help=f"comma-separated subset of: {','.join(CASES)} (default: all)")
    args = ap.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        print(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}", file=sys.stderr)
        return 2

    if not is_root():
        return 2
    if not os.path.exists(DOCKER_CLI):
        print(f"{DOCKER_CLI} (docker CLI 28) not found", file=sys.stderr)
        return 2
    use_dockerd = dockerd_wanted(args.skip_dockerd)

    watched_before = watch_host_paths()
    subnets = free_subnets(2)
    engines: list[Engine] = [PyDockerd("pydockerd", PYD_BASE, PYD_BRIDGE, subnets[0])]
    if use_dockerd:
        engines.append(RealDockerd("dockerd", DD_BASE, DD_BRIDGE, subnets[1]))
    if stale_bridge(PYD_BRIDGE):
        return 2

    result: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": args.runs,
                    "containers": args.containers, "concurrency": args.concurrency,
                    "host": {"nproc": os.cpu_count(), "kernel": platform.release()},
                    "engines": {}, "metrics": [], "errors": {}}
    bench = Bench(engines, args.runs, args.containers, args.concurrency)
    rc = 0
    t_start = time.time()
    signal.signal(signal.SIGTERM, _interrupt)     # clean up on kill, like on Ctrl-C
    tmpimg = Path(tempfile.mkdtemp(prefix="bench-img-"))
    try:
        log("building the busybox test image")
        build_test_image("busybox", tmpimg / "busybox.tar")
        for e in engines:
            ver = start_engine(e)
            result["engines"][e.name] = {"version": ver, "bridge": e.bridge, "subnet": e.subnet,
                                         "base": str(e.base)}
            e.must("load", "-i", str(tmpimg / "busybox.tar"), timeout=300)
        result["sanity"] = bench.sanity()
        for c in cases:
            getattr(bench, CASES[c])()
        result["memory_detail"] = getattr(bench, "memory_detail", None)
    except (Exception, KeyboardInterrupt) as ex:   # still clean up and print what we have
        record_fatal(result, ex)
        rc = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)   # cleanup runs to the end
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for e in engines:
            result["errors"][e.name] = e.errors
            result.setdefault("daemon_log_problems", {})[e.name] = daemon_log_problems(e)
            if not args.no_logs:
                keep_log(e, HERE / f"results-{e.name}.log")
        teardown(engines, watched_before, before_stop=bench.rm_all)
        shutil.rmtree(tmpimg, ignore_errors=True)

    result["elapsed_s"] = round(time.time() - t_start, 1)
    result["metrics"] = bench.metrics
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(f"pydockerd vs dockerd — median of {args.runs} runs; "
          f"{args.containers} containers for ps/memory; {result['elapsed_s']} s total")
    for n, info in result["engines"].items():
        print(f"  {n}: {info['version']}")
    print()
    print_table(bench.metrics, [e.name for e in engines])
    print_problems(engines, result, args.output)
    return rc


def print_problems(engines: list, result: dict, output: str) -> None:
    """Failed calls and daemon log errors of each engine, then where the JSON went."""
    for e in engines:
        if e.errors:
            print(f"\n{e.name}: {len(e.errors)} failed calls, first ones:")
            for m in e.errors[:10]:
                print(f"  - {m}")
        probs = result["daemon_log_problems"].get(e.name)
        if probs:
            print(f"\n{e.name} log: {len(probs)} error lines (first shown):")
            for m in probs[:10]:
                print(f"  | {m[:300]}")
    print(f"\nJSON: {output}")


if __name__ == "__main__":
    sys.exit(main())
