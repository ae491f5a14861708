"""A private Moby swarm manager for the swarm tests.

No other SwarmKit manager exists offline, so the swarm tests drive Moby's own
dockerd: Debian's docker.io and containerd packages are fetched with
`apt-get download` and unpacked with `dpkg -x` into a private directory
(build/moby of the repository, or $PYDOCKERD_MOBY_DIR) -- never installed as a
service, never on /var/run/docker.sock. The manager gets its own config file
(empty), data root, exec root, socket and pidfile, touches neither iptables nor
a bridge, listens on 127.0.0.1:<free port>, and is drained so that every task
lands on pydockerd. Only one runs at a time (a host-wide lock): `swarm init`
creates the host-wide docker_gwbridge bridge. Teardown, also after a failure,
leaves the swarm, removes docker_gwbridge, stops the daemon by its pid and
checks that no docker_gwbridge, veth or mount of it is left."""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator

ROOT = Path(__file__).resolve().parents[2]
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
LOCK = "/tmp/pydockerd-moby-manager.lock"
PACKAGES = ("docker.io", "containerd")
GWBRIDGE = "docker_gwbridge"


class ManagerUnavailable(Exception):
    """The Moby manager cannot be obtained or started (the tests fail with it)."""


def moby_dir() -> Path:
    return Path(os.environ.get("PYDOCKERD_MOBY_DIR") or ROOT / "build" / "moby")


def ensure_moby(dest: Path | None = None) -> Path:
    """Moby's dockerd and containerd unpacked under `dest`; its usr/sbin/dockerd."""
    dest = dest or moby_dir()
    dockerd = dest / "usr" / "sbin" / "dockerd"
    if dockerd.exists() and (dest / "usr" / "bin" / "containerd").exists():
        return dockerd
    debs = dest / "debs"
    try:
        debs.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ManagerUnavailable(f"cannot make {debs}: {e}") from e
    r = subprocess.run(["apt-get", "download", *PACKAGES], cwd=debs, capture_output=True,
                       text=True)
    files = sorted(debs.glob("*.deb"))
    if r.returncode != 0 or len(files) < len(PACKAGES):
        raise ManagerUnavailable(
            f"cannot fetch Moby's dockerd for the swarm manager (`apt-get download "
            f"{' '.join(PACKAGES)}` in {debs} failed: {r.stderr.strip()[-400:]}); "
            "run scripts/install.sh or set PYDOCKERD_MOBY_DIR to an unpacked docker.io")
    for deb in files:
        x = subprocess.run(["dpkg", "-x", str(deb), str(dest)], capture_output=True,
                           text=True)
        if x.returncode != 0:
            raise ManagerUnavailable(f"dpkg -x {deb} failed: {x.stderr.strip()}")
    if not dockerd.exists():
        raise ManagerUnavailable(f"{dockerd} missing after unpacking {files}")
    return dockerd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
            if line.count(":") >= 2}


def _enslaved(bridge: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge],
                         capture_output=True, text=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
            if line.count(":") >= 2]


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


@dataclass
class MobyManager:
    """A running private dockerd that is the only manager of a fresh swarm."""
    base: Path
    dockerd: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    links_before: set[str] = field(default_factory=set)
    node_id: str = ""

    @property
    def socket(self) -> str:
        return str(self.base / "docker.sock")

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cli(self, *args: str, check: bool = True, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, DOCKER_HOST=f"unix://{self.socket}",
                   DOCKER_CONFIG=str(self.base / "cli"))
        r = subprocess.run([DOCKER, *args], capture_output=True, text=True, env=env,
                           timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"manager: docker {' '.join(args)}: {r.stderr.strip()}"
                                 f"\n{self.log_tail()}")
        return r

    def out(self, *args: str) -> str:
        return self.cli(*args).stdout.strip()

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join((self.base / "dockerd.log").read_text(
                errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def join_token(self, role: str = "worker") -> str:
        return self.out("swarm", "join-token", "-q", role)

    def start(self, timeout: float = 30) -> None:
        self.links_before = _links()
        if GWBRIDGE in self.links_before:
            raise ManagerUnavailable(f"{GWBRIDGE} exists already (another swarm node on "
                                     "this machine?): the manager would share it")
        for d in ("root", "exec", "cli"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        (self.base / "daemon.json").write_text("{}")
        bindir = self.dockerd.parents[2]
        env = dict(os.environ, PATH=f"{bindir / 'usr' / 'bin'}:{bindir / 'usr' / 'sbin'}:"
                   f"{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}")
        log = open(self.base / "dockerd.log", "ab")
        self.proc = subprocess.Popen(
            [str(self.dockerd), "--config-file", str(self.base / "daemon.json"),
             "--data-root", str(self.base / "root"), "--exec-root", str(self.base / "exec"),
             "-H", f"unix://{self.socket}", "--pidfile", str(self.base / "dockerd.pid"),
             "--iptables=false", "--bridge=none", "--ip-forward=false"],
            stdout=log, stderr=log, env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while self.cli("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise ManagerUnavailable(f"Moby's dockerd did not start:\n{self.log_tail()}")
            time.sleep(0.2)
        self.cli("swarm", "init", "--advertise-addr", "127.0.0.1",
                 "--listen-addr", self.addr)
        self.node_id = self.out("info", "--format", "{{.Swarm.NodeID}}")
        self.cli("node", "update", "--availability", "drain", self.node_id)

    def stop(self) -> list[str]:
        """Tear everything down; what had to be removed by force (empty when clean).
        Only what this manager made is touched: docker_gwbridge (absent before, see
        the lock), the veths enslaved to it and the mounts under its directory."""
        if self.proc is not None and self.proc.poll() is None:
            # the ingress sandbox holds an endpoint on docker_gwbridge, and a leave
            # does not wait for it: the ingress network goes first
            self.cli("network", "rm", "ingress", check=False, input="y\n")
            deadline = time.monotonic() + 20
            while ("ingress" in self.cli("network", "ls", "--format", "{{.Name}}",
                                         check=False).stdout.split()
                   and time.monotonic() < deadline):
                time.sleep(0.2)
            self.cli("swarm", "leave", "--force", check=False)
            self.cli("network", "rm", GWBRIDGE, check=False)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        left: list[str] = []
        if GWBRIDGE not in self.links_before and GWBRIDGE in _links():
            for veth in _enslaved(GWBRIDGE):
                subprocess.run(["ip", "link", "del", veth], capture_output=True)
                left.append(veth)
            subprocess.run(["ip", "link", "del", GWBRIDGE], capture_output=True)
            left.append(GWBRIDGE)
        for m in reversed(_mounts_under(self.base)):
            subprocess.run(["umount", "-l", m], capture_output=True)
            left.append(m)
        shutil.rmtree(self.base, ignore_errors=True)
        return left


class ManagerLock:
    """Only one Moby manager on the machine at a time (docker_gwbridge is host-wide)."""

    def __init__(self, timeout: float = 600) -> None:
        self.timeout = timeout
        self.f: IO[str] | None = None

    def __enter__(self) -> "ManagerLock":
        self.f = open(LOCK, "a")
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ManagerUnavailable("another Moby manager held the lock for "
                                             f"{self.timeout} s ({LOCK})")
                time.sleep(0.5)

    def __exit__(self, *exc: object) -> None:
        assert self.f is not None
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def new_manager() -> MobyManager:
    dockerd = ensure_moby()
    base = Path(tempfile.mkdtemp(prefix="pdmgr-", dir="/tmp"))
    return MobyManager(base, dockerd)


def manager_info(m: MobyManager) -> dict[str, object]:
    return json.loads(m.out("info", "--format", "{{json .Swarm}}"))


def manager_session(heartbeat: str = "1s") -> Iterator[MobyManager]:
    """A module fixture's body: the one private manager (under the lock), with
    short heartbeats so that a node that went away is Down within ~3 s; a clear
    failure where none can run; torn down leaving nothing behind."""
    import pytest
    with ManagerLock():
        try:
            m = new_manager()
        except ManagerUnavailable as e:
            pytest.fail(f"no Moby swarm manager for the swarm tests: {e}", pytrace=False)
        try:
            m.start()
            m.cli("swarm", "update", "--dispatcher-heartbeat", heartbeat)
        except BaseException as e:
            left = m.stop()
            pytest.fail(f"the Moby swarm manager did not start: {e} (left: {left})",
                        pytrace=False)
        try:
            yield m
        finally:
            left = m.stop()
            assert left == [], f"the manager left {left} behind"
