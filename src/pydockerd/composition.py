"""The composition root of the services: each built in dependency order with its
collaborators passed to its constructor, then the routes over them. daemon.py
runs the process (listeners, signals, reload, shutdown) around what this builds."""
from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from functools import cache, partial
from typing import TYPE_CHECKING, Awaitable, Callable

from .api.router import Router
from .api.routes import build as build_routes
from .api.routes import containers as container_routes
from .api.routes import distribution as distribution_routes
from .api.routes import exec as exec_routes
from .api.routes import images as image_routes
from .api.routes import networks as network_routes
from .api.routes import plugins as plugin_routes
from .api.routes import swarm as swarm_routes
from .api.routes import system as system_routes
from .api.routes import volumes as volume_routes
from .builder.basepull import registry_pull
from .config import Config
from .containers.execs import ExecService
from .containers.health import HealthMonitor
from .containers.paths import Paths
from .containers.ports import ContainerPorts
from .containers.registry import ContainerRegistry
from .containers.runtimes import Runtimes
from .containers.service import ContainerService
from .containers.spec import SpecFactory
from .errors import DockerError, NoSpace
from .events import EventBus
from .images.service import ImageService
from .instruments import Instruments
from .network.portmap import PortMapper
from .network.service import NetworkService
from .plugins import PluginDirs, PluginRegistry
from .plugins.managed import ManagedPlugins, same_plugin
from .runtime.mountns import RuncNamespaces
from .store import Store
from .swarm.node import SwarmNode, TaskDeps
from .system import SystemService, engine_id
from .util.idmap import IDENTITY, IdMap
from .util.lazy import BuiltOnce
from .util.procfs import stat_fields
from .volumes import VolumeService

if TYPE_CHECKING:
    from .builder.service import BuildService
    from .containers.archive import ArchiveService
    from .containers.stats import StatsService
    from .distribution.service import DistributionService

log = logging.getLogger("pydockerd")

# the containers settle before the API answers until this many seconds after the
# process started (at least RESTORE_MIN_WAIT): the rest goes on in the background
RESTORE_DEADLINE = 1.5
RESTORE_MIN_WAIT = 0.2


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
    distribution: Callable[[], DistributionService]     # built by its first use
    builds: Callable[[], BuildService]    # built by the first build: see _builder
    stats: Callable[[], StatsService]        # built by the first `docker stats`
    archive: Callable[[], ArchiveService]     # built by the first cp or export
    plugins: PluginRegistry
    swarm: SwarmNode
    managed: ManagedPlugins
    create_ns: RuncNamespaces

    def reload(self, cfg: Config) -> None:
        """SIGHUP: hand the reloaded configuration to the services that read it."""
        self.containers.reload(cfg)
        self.system.reload(cfg)
        self.distribution().reload(cfg)


async def compose(cfg: Config, store: Store, events: EventBus, driver: str,
                  inst: Instruments = Instruments(), ids: IdMap = IDENTITY) -> Services:
    """Build the services in dependency order and bring them up to date with the
    host (images set up, networks started, containers reconciled)."""
    # the registry of container records needs only the store: built first, it
    # answers the other services' questions about containers (small Protocols)
    registry = ContainerRegistry(store, events)
    # before any rootfs is mounted: the containers directory becomes a private mount
    create_ns = RuncNamespaces(os.path.join(cfg.data_root, "containers"),
                               os.path.join(cfg.exec_root, "rootfs-stage"),
                               os.path.join(cfg.exec_root, "runc"),
                               [cfg.runtimes[cfg.default_runtime], *cfg.runtimes.values()],
                               running=registry.running_count)
    await asyncio.to_thread(create_ns.setup)
    # pulls, pushes, logins, plugin installs: the service and its modules are built by
    # the first (issue 10: idle memory); a removed layer's kept registry blobs go with
    # it (then the purge, in a worker thread, builds it), not at the next pull
    distribution: BuiltOnce[DistributionService] = BuiltOnce(
        lambda: _distribution(cfg, images, events))
    images = ImageService(cfg.data_root, store, events, driver, containers=registry,
                          container_actions=inst.container_actions, ids=ids,
                          layers_purged=[lambda: distribution().gc_blobs()])
    await images.start()
    port_mapper = PortMapper(cfg.ip, cfg.iptables, cfg.ip6tables)
    # managed plugins first: the legacy registry asks them before its own discovery
    managed = ManagedPlugins(cfg.data_root, cfg.exec_root,
                             PluginDirs.from_env(os.environ).socket_dir,
                             cfg.runtimes[cfg.default_runtime], events, distribution,
                             # the services are built below, before any request
                             in_use=lambda name: _plugin_in_use(volumes, networks, name))
    plugins = PluginRegistry.from_env(os.environ, managed=managed)
    await managed.start(cfg.live_restore)          # before containers come back with their plugin volumes
    # network and IPAM drivers may be plugins too
    networks = NetworkService(
        store, events, cfg.exec_root, containers=registry,
        on_bridge_removed=[port_mapper.remove_chains], bridge_name=cfg.bridge,
        bip=cfg.bip or None, fixed_cidr=cfg.fixed_cidr or None, mtu=cfg.mtu,
        iptables=cfg.iptables, ip_forward=cfg.ip_forward, ip_masq=cfg.ip_masq, icc=cfg.icc,
        default_bind_ip=cfg.ip, ipv6=cfg.ipv6, fixed_cidr_v6=cfg.fixed_cidr_v6 or None,
        ip6tables=cfg.ip6tables, host_id=engine_id(cfg.data_root),
        address_pools=cfg.default_address_pools, dns=cfg.dns,
        actions=inst.network_actions, ids=ids, plugins=plugins)
    volumes = VolumeService(cfg.data_root, store, events, containers=registry,
                            plugins=plugins, ids=ids)
    ports = ContainerPorts(port_mapper, partial(_bridge_of, networks),
                           partial(_plugin_driven, networks))
    paths = Paths(cfg.data_root, cfg.exec_root)
    runtimes = Runtimes(cfg, paths.runc_root, create_ns)
    health = HealthMonitor(registry, paths, runtimes, inst.health_checks)
    containers = ContainerService(
        cfg, registry, paths, runtimes, images=images, networks=networks, volumes=volumes,
        ports=ports, spec=SpecFactory(cfg, ids), observer=health, actions=inst.container_actions)
    execs = ExecService(containers)
    await networks.start()
    # reconciling with what is really running: on a full disk what cannot be
    # recorded is logged and done again at the next start; the daemon starts.
    # Containers still to reconcile (left running by a crash, say) keep their
    # endpoints until their own release; then they and the restarts are settled,
    # in the background from RESTORE_DEADLINE on
    await _on_full_disk_later("restore containers", containers.restore())
    execs.restore()
    await ports.restore([c for c in containers.all()
                         if c.state.running and not containers.restoring(c.id)])
    await _on_full_disk_later("release stale endpoints", networks.reconcile(
        [c.id for c in containers.all() if c.state.running or containers.restoring(c.id)]))
    await _on_full_disk_later("settle containers", containers.settle(
        max(RESTORE_MIN_WAIT, RESTORE_DEADLINE - _process_age())))
    swarm = SwarmNode(cfg.data_root, list(cfg.labels), deps=TaskDeps(
        containers, images, registry_pull(distribution), cfg.exec_root))
    await swarm.start()
    system = SystemService(cfg, registry, images, networks, volumes, swarm)
    builds = cache(partial(_builder, images, containers, distribution, inst))
    return Services(registry, images, networks, volumes, containers, health, execs, system,
                    distribution, builds, cache(_stats),
                    cache(partial(_archive, registry, images, volumes, ids)), plugins, swarm,
                    managed, create_ns)


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
    router.add(swarm_routes.routes(s.swarm))
    router.add(plugin_routes.routes(s.managed))
    return router


def _distribution(cfg: Config, images: ImageService, events: EventBus) -> DistributionService:
    """The registry service (pull, push, login, search, plugin installs), imported and
    built by the first use: its modules are memory an idle daemon does without."""
    from .distribution.service import DistributionService
    return DistributionService(cfg, images, events)


def _builder(images: ImageService, containers: ContainerService,
             distribution: Callable[[], DistributionService], inst: Instruments
             ) -> BuildService:
    """The build service, imported and built on the first build: the builder's
    modules are ~0.5 MiB an idle daemon does without (issue 10: idle memory)."""
    from .builder.service import BuildService
    return BuildService(images, containers, registry_pull(distribution), inst.builds)


def _stats() -> StatsService:
    """`docker stats`' service, imported and built by the first (issue 10: idle memory)."""
    from .containers.stats import StatsService
    return StatsService()


def _archive(registry: ContainerRegistry, images: ImageService, volumes: VolumeService,
             ids: IdMap) -> ArchiveService:
    """The `docker cp` and `docker export` service, imported and built by the first
    of them (its modules and tar handling: issue 10, idle memory)."""
    from .containers.archive import ArchiveService
    return ArchiveService(registry, images, volumes, ids)


def _bridge_of(networks: NetworkService, network_id: str) -> str | None:
    """The bridge device of a network (for port publishing rules)."""
    try:
        net = networks.get(network_id)
    except DockerError:
        return None
    return networks.device(net) if net.driver == "bridge" else None


def _plugin_driven(networks: NetworkService, network_id: str) -> bool:
    """Whether a network's driver is a plugin (which publishes the ports itself)."""
    try:
        return networks.get(network_id).remote
    except DockerError:
        return False


def _plugin_in_use(volumes: VolumeService, networks: NetworkService, name: str) -> bool:
    """Whether a volume or a network uses the managed plugin `name` (as driver or IPAM
    driver): dockerd's reference count, which refuses disable and rm without -f."""
    return volumes.driver_in_use(name) or any(
        same_plugin(n.driver, name) or same_plugin(n.ipam_driver, name)
        for n in networks.list())


async def _on_full_disk_later(what: str, step: Awaitable[None]) -> None:
    """Run a start-up step; a full disk (NoSpace) is logged, not fatal."""
    try:
        await step
    except NoSpace as e:
        log.error("start-up: %s: %s; done again at the next start", what, e.message)


def _process_age() -> float:
    """Seconds since this process started (its exec), from /proc; 0 if unknown."""
    fields = stat_fields("self")
    try:
        start_ticks = int(fields[19]) if fields is not None else 0
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError):
        return 0.0
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK")) if start_ticks else 0.0
