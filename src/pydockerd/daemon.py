"""The composition root: start-up and shutdown sequence, wiring services to routes."""
from __future__ import annotations

import asyncio
import dataclasses
import grp
import logging
import os
import signal
import ssl
import sys
import traceback
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Awaitable

from . import __version__
from .api.router import Router
from .api.routes import build as build_routes
from .api.routes import containers as container_routes
from .api.routes import distribution as distribution_routes
from .api.routes import exec as exec_routes
from .api.routes import images as image_routes
from .api.routes import networks as network_routes
from .api.routes import swarm as swarm_routes
from .api.routes import system as system_routes
from .api.routes import volumes as volume_routes
from .api.server import ApiServer
from .builder.service import BuildService, registry_pull
from .config import JSON_KEYS, Config, load_config_file, logging_level, validate
from .containers.archive import ArchiveService
from .containers.execs import ExecService
from .containers.health import HealthMonitor
from .containers.paths import Paths
from .containers.ports import ContainerPorts
from .containers.registry import ContainerRegistry
from .containers.runtimes import Runtimes
from .containers.service import ContainerService
from .containers.spec import SpecFactory
from .containers.stats import StatsService
from .distribution.service import DistributionService
from .errors import DockerError, InvalidParameter, NoSpace
from .events import EventBus
from .images.service import ImageService
from .instruments import Instruments
from .network.portmap import PortMapper
from .network.service import NetworkService
from .runtime.host import host_facts
from .runtime.pidwatch import pid_alive, set_child_subreaper
from .store import Store
from .swarm import NoSwarm
from .system import SystemService, engine_id
from .util.fsatomic import write_atomic
from .util.systemd import SystemdEnv, monotonic_usec, take_environment
from .volumes import VolumeService

if TYPE_CHECKING:
    from .metrics import MetricsServer

log = logging.getLogger("pydockerd")


def _storage_driver(cfg: Config) -> str:
    if cfg.storage_driver in ("overlay2", "overlay"):
        return "overlay2"
    if cfg.storage_driver == "vfs":
        return "vfs"
    try:
        with open("/proc/filesystems") as f:
            return "overlay2" if "overlay" in f.read() else "vfs"
    except OSError:
        return "vfs"


def _check_pidfile(path: str) -> None:
    try:
        with open(path) as f:
            pid = int(f.read().strip() or "0")
    except (FileNotFoundError, ValueError):
        return
    if pid and pid != os.getpid() and pid_alive(pid):
        raise DockerError(f"pid file found, ensure pydockerd is not running or delete {path}")


def _tls_context(cfg: Config) -> ssl.SSLContext | None:
    use_tls = cfg.tlsverify or bool(cfg.tls)
    if not use_tls:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cfg.tlscert, cfg.tlskey)
    if cfg.tlsverify:
        ctx.load_verify_locations(cfg.tlscacert)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


@dataclass
class Services:
    """Everything start() builds, each given its collaborators through its
    constructor (no attribute is set on a service after it was built)."""
    registry: ContainerRegistry
    images: ImageService
    networks: NetworkService
    volumes: VolumeService
    containers: ContainerService
    health: HealthMonitor
    execs: ExecService
    system: SystemService
    distribution: DistributionService
    builds: BuildService
    stats: StatsService
    archive: ArchiveService

    def reload(self, cfg: Config) -> None:
        """SIGHUP: hand the reloaded configuration to the services that read it."""
        self.containers.reload(cfg)
        self.system.reload(cfg)
        self.distribution.reload(cfg)


async def compose(cfg: Config, store: Store, events: EventBus, driver: str,
                  inst: Instruments = Instruments()) -> Services:
    """Build the services in dependency order and bring them up to date with the
    host (images set up, networks started, containers reconciled)."""
    # the registry of container records needs only the store: built first, it
    # answers the other services' questions about containers (small Protocols)
    registry = ContainerRegistry(store, events)
    images = ImageService(cfg.data_root, store, events, driver, containers=registry,
                          container_actions=inst.container_actions)
    await images.start()
    port_mapper = PortMapper(cfg.ip, cfg.iptables, cfg.ip6tables)
    networks = NetworkService(
        store, events, cfg.exec_root, containers=registry,
        on_bridge_removed=[port_mapper.remove_chains], bridge_name=cfg.bridge,
        bip=cfg.bip or None, fixed_cidr=cfg.fixed_cidr or None, mtu=cfg.mtu,
        iptables=cfg.iptables, ip_forward=cfg.ip_forward, ip_masq=cfg.ip_masq, icc=cfg.icc,
        default_bind_ip=cfg.ip, ipv6=cfg.ipv6, fixed_cidr_v6=cfg.fixed_cidr_v6 or None,
        ip6tables=cfg.ip6tables, host_id=engine_id(cfg.data_root),
        actions=inst.network_actions)
    volumes = VolumeService(cfg.data_root, store, events, containers=registry)
    ports = ContainerPorts(port_mapper, partial(_bridge_of, networks))
    paths = Paths(cfg.data_root, cfg.exec_root)
    runtimes = Runtimes(cfg, paths.runc_root)
    health = HealthMonitor(registry, paths, runtimes, inst.health_checks)
    containers = ContainerService(
        cfg, registry, paths, runtimes, images=images, networks=networks, volumes=volumes,
        ports=ports, spec=SpecFactory(cfg), observer=health, actions=inst.container_actions)
    execs = ExecService(containers)
    await networks.start()
    # reconciling with what is really running: on a full disk what cannot be
    # recorded is logged and done again at the next start; the daemon starts
    await _on_full_disk_later("restore containers", containers.restore())
    execs.restore()
    await ports.restore([c for c in containers.all() if c.state.running])
    await _on_full_disk_later("release stale endpoints", networks.reconcile(
        [c.id for c in containers.all() if c.state.running]))
    system = SystemService(cfg, containers, images, networks, volumes)
    distribution = DistributionService(cfg, images, events)
    builds = BuildService(images, containers, registry_pull(distribution), inst.builds)
    return Services(registry, images, networks, volumes, containers, health, execs, system,
                    distribution, builds, StatsService(), ArchiveService(registry, images, volumes))


def routes(s: Services, events: EventBus) -> Router:
    router = Router()
    router.add(system_routes.routes(s.system, events))
    router.add(container_routes.routes(s.containers, s.images, s.networks, s.stats, s.archive))
    router.add(exec_routes.routes(s.execs))
    # distribution first: its dynamic routes (push) must win over images/{name:path}
    router.add(distribution_routes.routes(s.distribution))
    router.add(image_routes.routes(s.images, s.containers))
    router.add(build_routes.routes(s.builds))
    router.add(network_routes.routes(s.networks, s.containers))
    router.add(volume_routes.routes(s.volumes))
    router.add(swarm_routes.routes(NoSwarm()))
    return router


def _bridge_of(networks: NetworkService, network_id: str) -> str | None:
    """The bridge device of a network (for port publishing rules)."""
    try:
        net = networks.get(network_id)
    except DockerError:
        return None
    return networks.device(net) if net.driver == "bridge" else None


class Daemon:
    def __init__(self, cfg: Config, config_file: str = "/etc/docker/daemon.json") -> None:
        self.cfg = cfg
        self.config_file = config_file
        self.events = EventBus()
        self.store: Store | None = None
        self.services: Services | None = None
        self.server: ApiServer | None = None
        self.metrics: MetricsServer | None = None
        self._stop = asyncio.Event()
        self.systemd = SystemdEnv()
        self._ready = False  # READY=1 sent: a reload may then report RELOADING=1

    async def start(self) -> None:
        cfg = self.cfg
        self.systemd = take_environment()
        for host in cfg.hosts:  # fail before touching anything
            if host.startswith("fd://"):
                self.systemd.select(host[len("fd://"):])
        _check_pidfile(cfg.pidfile)
        for d in (cfg.data_root, cfg.exec_root):
            os.makedirs(d, mode=0o711, exist_ok=True)
        os.makedirs(os.path.dirname(cfg.pidfile) or ".", exist_ok=True)
        write_atomic(cfg.pidfile, str(os.getpid()))
        self._trap_signals()
        set_child_subreaper()
        log.debug("host facts: %s", host_facts())  # probed once, used by every spec
        self.store = Store(os.path.join(cfg.data_root, "pydockerd.db"))
        driver = _storage_driver(cfg)
        families = None
        if cfg.metrics_addr:        # prometheus_client is loaded only when asked for
            from .metrics import Families, MetricsServer
            families = Families()
        self.services = services = await compose(
            cfg, self.store, self.events, driver,
            families.instruments if families else Instruments())
        self.server = ApiServer(routes(services, self.events))
        if families is not None:
            self.metrics = MetricsServer(cfg.metrics_addr, families, services.registry,
                                         self.events, services.system)
            await self.metrics.start()
        log.info("pydockerd %s: storage driver %s, runtime %s (%s), data root %s",
                 __version__, driver, cfg.default_runtime, cfg.runtimes[cfg.default_runtime],
                 cfg.data_root)
        await self._listen()
        self.events.publish("daemon", "start", services.system.engine_id, {"name": "pydockerd"})
        self.systemd.notify("READY=1", f"STATUS=API listening on {', '.join(cfg.hosts)}")
        self._ready = True
        log.info("API listening on %s", ", ".join(cfg.hosts))

    async def _listen(self) -> None:
        assert self.server
        cfg = self.cfg
        gid: int | None = None
        try:
            gid = grp.getgrnam(cfg.group).gr_gid
        except KeyError:
            if cfg.group != "docker":
                raise InvalidParameter(f"group {cfg.group} not found")
        ctx = _tls_context(cfg)
        for host in cfg.hosts:
            if host.startswith("unix://"):
                await self.server.listen_unix(host[len("unix://"):], gid)
            elif host.startswith("tcp://"):
                hostport = host[len("tcp://"):]
                h, _, p = hostport.rpartition(":")
                port = int(p) if p else (2376 if ctx else 2375)
                if ctx is None:
                    if cfg.tls is not False:
                        raise InvalidParameter(
                            f"refusing to listen on {host} without TLS: use --tlsverify with "
                            "--tlscacert/--tlscert/--tlskey, or pass --tls=false explicitly")
                    log.warning("!!! API is accessible on %s without encryption: anyone who "
                                "can reach it has root on this host !!!", host)
                await self.server.listen_tcp(h.strip("[]") or "0.0.0.0", port, ctx)
            elif host.startswith("fd://"):
                for fd in self.systemd.select(host[len("fd://"):]):
                    await self.server.listen_fd(fd, ctx)

    def _trap_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        loop.add_signal_handler(signal.SIGUSR1, self._dump_stacks)

    # daemon.json keys that SIGHUP applies to a running daemon
    RELOADABLE = ("debug", "log-level", "live-restore", "shutdown-timeout",
                  "max-concurrent-downloads", "max-concurrent-uploads", "max-download-attempts")

    def _reload(self) -> None:
        """SIGHUP (systemd's ExecReload): tell the service manager a reload runs
        (RELOADING=1, then READY=1 when done, whatever its outcome)."""
        if not self._ready:  # still starting: READY=1 now would come too early
            self._apply_reload()
            return
        self.systemd.notify("RELOADING=1", monotonic_usec())
        try:
            self._apply_reload()
        finally:
            self.systemd.notify("READY=1")

    def _apply_reload(self) -> None:
        """Re-read the config file and apply what can change at run time."""
        try:
            values = load_config_file(self.config_file)
        except DockerError as e:
            log.error("SIGHUP: configuration not reloaded: %s", e.message)
            return
        current = dataclasses.asdict(self.cfg)
        changes = {JSON_KEYS[key]: values[key] for key in self.RELOADABLE
                   if key in values and current[JSON_KEYS[key]] != values[key]}
        ignored = sorted(set(values) - set(self.RELOADABLE))
        if ignored:
            log.info("SIGHUP: these options need a restart and were left as they are: %s",
                     ", ".join(ignored))
        if not changes:
            log.info("SIGHUP: reload requested; nothing reloadable changed")
            return
        try:
            new_cfg = dataclasses.replace(self.cfg, **changes)
            validate(new_cfg)
        except (DockerError, TypeError) as e:
            log.error("SIGHUP: configuration not reloaded: %s",
                      e.message if isinstance(e, DockerError) else e)
            return
        self.cfg = new_cfg
        if self.services is not None:
            self.services.reload(self.cfg)
        if "debug" in changes or "log_level" in changes:
            logging.getLogger().setLevel(logging_level(self.cfg))
        log.info("SIGHUP: reloaded %s", ", ".join(f"{k}={v}" for k, v in changes.items()))
        engine_id = self.services.system.engine_id if self.services is not None else ""
        self.events.publish("daemon", "reload", engine_id, {
            "name": "pydockerd", **{k: str(v) for k, v in changes.items()}})

    def _dump_stacks(self) -> None:
        lines = ["=== BEGIN task stack dump ==="]
        for t in asyncio.all_tasks():
            lines.append(f"--- {t.get_name()}: {t.get_coro()}")
            for frame in t.get_stack():
                lines.extend(x.rstrip() for x in traceback.format_stack(frame, 1))
        for tid, frame in sys._current_frames().items():
            lines.append(f"--- thread {tid}")
            lines.extend(x.rstrip() for x in traceback.format_stack(frame))
        lines.append("=== END task stack dump ===")
        log.info("\n".join(lines))

    async def run(self) -> int:
        await self.start()
        await self._stop.wait()
        await self.shutdown()
        return 0

    async def shutdown(self) -> None:
        """Stop accepting, stop the containers (unless live-restore), end every client
        connection and background task (each owner cancels and awaits its tasks), then
        close the store."""
        self.systemd.notify("STOPPING=1")
        log.info("shutting down (timeout %ss)", self.cfg.shutdown_timeout)
        if self.server:
            await self.server.stop_accepting()
        s = self.services
        if s is not None:
            try:
                await asyncio.wait_for(s.containers.shutdown(self.cfg.shutdown_timeout),
                                       self.cfg.shutdown_timeout + 5)
            except asyncio.TimeoutError:
                log.warning("containers did not stop within the shutdown timeout")
        if self.server:
            # requests in flight get a moment; then every connection (events,
            # follow-logs, hijacked streams) is cancelled and awaited
            await self.server.finish(1.0)
        if self.metrics:
            await self.metrics.close()
        if s is not None:
            await s.execs.close()
            await s.health.close()
            await s.networks.stop()
        if self.store:
            self.store.close()
        for path in self.cfg.socket_paths:
            try:
                os.unlink(path)
            except OSError:
                pass
        try:
            os.unlink(self.cfg.pidfile)
        except OSError:
            pass
        log.info("daemon shut down")


async def _on_full_disk_later(what: str, step: Awaitable[None]) -> None:
    """Run a start-up step; a full disk (NoSpace) is logged, not fatal."""
    try:
        await step
    except NoSpace as e:
        log.error("start-up: %s: %s; done again at the next start", what, e.message)


async def run_daemon(cfg: Config, config_file: str = "/etc/docker/daemon.json") -> int:
    daemon = Daemon(cfg, config_file)
    try:
        return await daemon.run()
    except DockerError:
        raise
    except Exception as e:  # noqa: BLE001 - report and exit non-zero
        log.exception("daemon failed: %s", e)
        return 1


__all__ = ["Daemon", "run_daemon"]
