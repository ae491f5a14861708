"""Shared fixtures: a real pydockerd on its own data root, socket and bridge."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pydockerd.testing.images import build_all

ROOT = Path(__file__).resolve().parents[1]     # the repository; nothing above it is used
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


@dataclass
class Daemon:
    """A pydockerd process under test, with helpers to drive it with the docker CLI."""
    base: Path
    bridge: str
    bip: str
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    prefix: list[str] = field(default_factory=list)     # e.g. nsenter into a namespace

    @property
    def socket(self) -> str:
        return str(self.base / "docker.sock")

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def data_root(self) -> str:
        return str(self.base / "data")

    @property
    def exec_root(self) -> str:
        return str(self.base / "exec")

    @property
    def log_path(self) -> Path:
        return self.base / "daemon.log"

    def argv(self) -> list[str]:
        return [*self.prefix, sys.executable, "-m", "pydockerd", "-H", self.host, "--data-root",
                self.data_root, "--exec-root", self.exec_root, "--pidfile",
                str(self.base / "pydockerd.pid"), "-b", self.bridge, "--bip", self.bip,
                "--config-file", str(self.base / "daemon.json"), "--ip-forward=false",
                "--debug", *self.extra_args]

    def start(self, timeout: float = 20) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        # plugins are looked for in the daemon's own directories, never the host's
        # (a test that serves plugins sets these itself)
        env.setdefault("PYDOCKERD_PLUGIN_SOCKET_DIR", str(self.base / "plugins"))
        env.setdefault("PYDOCKERD_PLUGIN_SPEC_DIRS", str(self.base / "plugin-specs"))
        # an unknown plugin (a network driver, say) is "not found" after 4 s of
        # dockerd's retries rather than 30 (tests that need more set it themselves)
        env.setdefault("PYDOCKERD_PLUGIN_RETRY_TIMEOUT", "4")
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), stdout=logf, stderr=logf, env=env,
                                     start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pydockerd exited: {self.log_tail()}")
            if os.path.exists(self.socket):
                r = self.cli("version", "--format", "{{.Server.Version}}", check=False)
                if r.returncode == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"pydockerd did not come up: {self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def cli(self, *args: str, input: bytes | str | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
        env = dict(os.environ, DOCKER_HOST=self.host, DOCKER_CONFIG=str(self.base / "cli"))
        env.pop("DOCKER_CONTEXT", None)
        if isinstance(input, str):
            input = input.encode()
        r = subprocess.run([DOCKER, *args], input=input, capture_output=True, env=env,
                           timeout=timeout, stdin=subprocess.DEVNULL if input is None else None)
        r.stdout_text = r.stdout.decode(errors="replace")  # type: ignore[attr-defined]
        r.stderr_text = r.stderr.decode(errors="replace")  # type: ignore[attr-defined]
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({r.returncode}):\n"
                                 f"{r.stderr_text}\n--- daemon log ---\n{self.log_tail()}")
        return r

    def out(self, *args: str, **kw) -> str:
        return self.cli(*args, **kw).stdout.decode(errors="replace")

    def inspect(self, ref: str) -> dict:
        return json.loads(self.out("inspect", ref))[0]


def _free_subnet() -> str:
    used = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    for _ in range(50):
        b = random.randint(100, 250)
        c = random.randint(0, 250)
        if f"10.{b}.{c}." not in used:
            return f"10.{b}.{c}.1/24"
    raise RuntimeError("no free subnet")


def make_daemon(tmp: Path, extra_args: list[str] | None = None) -> Daemon:
    tag = "%04x" % random.randint(0, 0xFFFF)
    d = Daemon(tmp, f"pdt{tag}", _free_subnet(), list(extra_args or []))
    (tmp / "cli").mkdir(parents=True, exist_ok=True)
    return d


def start_with_plugin_dirs(d: Daemon, sockets: Path, specs: Path,
                           retry_timeout: str | None = None) -> None:
    """Start (or restart) the test daemon `d` looking for plugins in `sockets` and `specs`
    only (never the host's directories); retry_timeout: PYDOCKERD_PLUGIN_RETRY_TIMEOUT
    (conftest's Daemon.start default otherwise)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PYDOCKERD_PLUGIN_SOCKET_DIR", str(sockets))
    mp.setenv("PYDOCKERD_PLUGIN_SPEC_DIRS", str(specs))
    if retry_timeout is not None:
        mp.setenv("PYDOCKERD_PLUGIN_RETRY_TIMEOUT", retry_timeout)
    try:
        d.start()
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def images_dir(tmp_path_factory) -> Path:
    """busybox.tar and layered.tar, built offline (pydockerd.testing.images)."""
    out = tmp_path_factory.mktemp("images")
    build_all(out, ("busybox", "layered"))
    return out


def _unmount_under(base: Path) -> None:
    """Every mount below the daemon's base (rootfs overlays left by a daemon that
    stopped with them mounted, tmpfs data roots, volumes), deepest first."""
    prefix = str(base).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def cleanup_daemon(d: Daemon) -> None:
    """Stop the daemon and remove every container, bridge and chain it made."""
    if d.proc is not None and d.proc.poll() is None:
        for cid in d.out("ps", "-aq", check=False).split():
            d.cli("rm", "-f", cid, check=False)
        # user networks a test left (the fuzz test makes some): their bridges and
        # iptables/ip6tables chains go through the daemon
        for net in d.out("network", "ls", "-q", "--filter", "type=custom",
                         check=False).split():
            d.cli("network", "rm", net, check=False)
    d.stop()
    # containers left running by live-restore tests
    runc_root = os.path.join(d.exec_root, "runc")
    if os.path.isdir(runc_root):
        for cid in os.listdir(runc_root):
            subprocess.run(["runc", "--root", runc_root, "delete", "-f", cid],
                           capture_output=True)
    _unmount_under(d.base)
    for ipt, chain_table, chain in [
            (ipt, table, f"{prefix}-{d.bridge}") for ipt in ("iptables", "ip6tables")
            for prefix in ("PYDOCKER", "PYPORTS") for table in ("filter", "nat")]:
        rules = subprocess.run([ipt, "-t", chain_table, "-S"], capture_output=True,
                               text=True).stdout
        for line in rules.splitlines():
            if line.startswith("-A ") and line.endswith(f"-j {chain}"):
                subprocess.run([ipt, "-t", chain_table, "-D", *line.split()[1:]],
                               capture_output=True)
        subprocess.run([ipt, "-t", chain_table, "-F", chain], capture_output=True)
        subprocess.run([ipt, "-t", chain_table, "-X", chain], capture_output=True)
    subprocess.run(["ip", "link", "del", d.bridge], capture_output=True)
    for pinned in ("netns", "userns"):      # userns: sandboxes of --userns-remap
        pins = os.path.join(d.exec_root, pinned)
        if os.path.isdir(pins):
            for f in os.listdir(pins):
                subprocess.run(["umount", "-l", os.path.join(pins, f)], capture_output=True)


@pytest.fixture(scope="session")
def daemon(images_dir) -> Daemon:
    """One daemon for the session, with busybox and layered loaded."""
    tmp = Path(tempfile.mkdtemp(prefix="pdt-", dir="/tmp"))
    d = make_daemon(tmp)
    d.start()
    try:
        d.cli("load", "-i", str(images_dir / "busybox.tar"))
        d.cli("load", "-i", str(images_dir / "layered.tar"))
        yield d
    finally:
        cleanup_daemon(d)
        if os.environ.get("KEEP_TEST_DIRS") != "1":
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def fresh_daemon(images_dir, tmp_path_factory):
    """A private daemon for tests that restart or kill it."""
    made: list[Daemon] = []

    def factory(*extra: str) -> Daemon:
        tmp = Path(tempfile.mkdtemp(prefix="pdt-", dir="/tmp"))
        d = make_daemon(tmp, list(extra))
        made.append(d)            # cleaned up even when it fails to start (bridge, chains)
        d.start()
        d.cli("load", "-i", str(images_dir / "busybox.tar"))
        return d
    yield factory
    for d in made:
        cleanup_daemon(d)
        shutil.rmtree(d.base, ignore_errors=True)


@pytest.fixture
def sdk(daemon):
    import docker
    client = docker.DockerClient(base_url=daemon.host, timeout=60)
    yield client
    client.close()


@pytest.fixture
def names(daemon):
    """The names of the containers a test makes on `daemon`: removed (rm -f) afterwards,
    even when the test fails."""
    made: list[str] = []
    yield made
    for n in made:
        daemon.cli("rm", "-f", n, check=False)


@pytest.fixture
def shared_dir():
    """A directory on a shared mount of its own (the machine's / is private)."""
    path = tempfile.mkdtemp(prefix="pdt-shared-", dir="/tmp")
    subprocess.run(["mount", "--bind", path, path], check=True)
    try:
        subprocess.run(["mount", "--make-shared", path], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False)
        subprocess.run(["rmdir", path], check=False)
