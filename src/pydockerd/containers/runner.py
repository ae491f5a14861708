"""Bringing one run of a container up and down.

`Runner.start` makes everything a run needs (rootfs mount and network
sandbox in parallel, published ports, volumes, /etc files, the OCI spec,
conmon + runc) and records the container as running; on any failure it undoes
what it made and records the failed start. `Runner.teardown` releases what a
run held. The caller holds the container's lock.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..config import Config
from ..errors import Conflict, DockerError, SystemError_
from ..instruments import ActionTimer
from ..logdrivers.message import LogDriver
from ..logdrivers.pipeline import LogPipeline
from ..logdrivers.remote import open_remote
from ..logdrivers.spool import new_spool_name
from ..models import EndpointSettings, from_doc
from ..runtime import conmon
from ..runtime.spec_input import SpecInput
from . import links
from .attach import PendingAttachers
from .create import normalise_endpoints
from .deps import Images, Networks, Ports, RunObserver, SpecBuilder, Volumes
from .etcfiles import (EtcFiles, plan_etc_files, rewrite_hosts, rewrite_resolv_conf,
                       write_etc_files)
from .health import initial_health
from .logs import driver_path, log_target
from .model import Container, Endpoint
from .mounts import mount_volumes, unmount_volumes
from .paths import Paths
from .ports import port_options
from .registry import ContainerRegistry
from .runtimes import Runtimes

log = logging.getLogger("pydockerd.containers")


def exit_code_for_error(msg: str) -> int:
    if "executable file not found" in msg or "no such file or directory" in msg:
        return 127
    if "permission denied" in msg:
        return 126
    return 128


class Runner:
    def __init__(self, cfg: Config, paths: Paths, runtimes: Runtimes,
                 registry: ContainerRegistry, images: Images, networks: Networks,
                 volumes: Volumes | None, ports: Ports | None, spec: SpecBuilder,
                 observer: RunObserver | None, attachers: PendingAttachers,
                 logs: LogPipeline, actions: ActionTimer) -> None:
        self.cfg = cfg
        self.logs = logs
        self.paths = paths
        self.runtimes = runtimes
        self.registry = registry
        self.images = images
        self.networks = networks
        self.volumes = volumes
        self.ports = ports
        self.spec = spec
        self.observer = observer
        self.attachers = attachers
        self.actions = actions      # "start": every run started (verb, restart, policy)
        self._purger: ThreadPoolExecutor | None = None

    async def start(self, c: Container, **changes: Any) -> None:
        """Start a run; `changes` are recorded with the new state (restart count)."""
        c.state.check_runnable()
        began = time.monotonic()
        try:
            # runc's cgroup writes need the kernel's attach lock: warm it meanwhile
            with self.runtimes.warm_cgroups():
                started, netns, remote, hooks = await self._create(c)
            if netns is not None and not netns.startswith("/proc/"):
                self.networks.hand_over_sandbox(c.id, started.pid)
            self.follow_logs(c, started.conmon_pid, remote, started.pid)
            # attachers waiting for `docker run -it` connect before the process runs
            await self.attachers.connect(c.id, self.paths.bundle(c.id))
            try:
                await self.runtimes.of(c).start(c.id, started.pid, hooks)
            except DockerError:
                await self.runtimes.of(c).delete(c.id, force=True)
                raise
        except BaseException as e:
            await self.teardown(c)
            msg = e.message if isinstance(e, DockerError) else str(e)
            self.attachers.fail(c.id, msg)
            self.registry.commit_fact(c, state=c.state.start_failed(msg,
                                                                    exit_code_for_error(msg)),
                                      **changes)
            raise
        state = c.state.started(started.pid, started.conmon_pid)
        if c.host_config["LogConfig"]["Type"] == "json-file":
            c.log_path = driver_path(c, self.paths)     # dockerd: set at start
        self.registry.commit_fact(c, state=state.with_health(initial_health(c.config)),
                                  has_been_started=True, **changes)
        if self.observer is not None:
            self.observer.on_start(c)
        self.registry.event(c, "start")
        self.actions.observe("start", time.monotonic() - began)

    async def _create(self, c: Container) -> tuple[conmon.Started, str | None,
                                                   LogDriver | None, bool]:
        """Everything up to `runc create` done: (the pids, the network namespace's
        path, the remote log driver, whether the spec has hooks)."""
        if c.links and "bridge" in self.endpoint_configs(c):
            links.check_children(c, self.registry.get)
        # the rootfs mount and the network sandbox are independent: do both at once;
        # the layers come from the rw layer's record (no image lookup); the rw
        # layer of an auto-remove container goes with this run: volatile
        mounted, net = await asyncio.gather(
            asyncio.to_thread(self.images.mount_rootfs, c.id, None,
                              bool(c.host_config.get("AutoRemove"))),
            self._network_up(c), return_exceptions=True)
        for result in (net, mounted):
            if isinstance(result, BaseException):
                raise result
        assert isinstance(mounted, str) and not isinstance(net, BaseException)
        rootfs, netns = mounted, net
        if self.ports is not None:
            await self.ports.publish(c)
        if self.volumes is not None:
            await mount_volumes(self.volumes, c, rootfs)
        etc = plan_etc_files(c, self.networks, self.cfg, self.registry.get)
        si = self.spec.prepare(c, rootfs, netns, self.registry.get)
        spec = await asyncio.to_thread(self._write_etc_and_build, etc, si)
        remote = await self.open_remote_logs(c)
        try:
            async with self.runtimes.create_namespace(rootfs, spec) as mount_ns:
                started = await conmon.create(self.conmon_spec(c, mount_ns or ""), spec)
        except BaseException:
            if remote is not None:
                remote.close()
            raise
        return started, netns, remote, bool(spec.get("hooks"))

    def _write_etc_and_build(self, etc: EtcFiles, si: SpecInput) -> dict[str, Any]:
        """One worker thread for both (neither needs the other): the /etc files, then
        config.json's document."""
        ids = self.spec.ids
        write_etc_files(etc, ids.root() if ids.remapped else None)
        return self.spec.build(si)

    async def _network_up(self, c: Container) -> str | None:
        """Join or create the container's network namespace; returns its path."""
        mode = c.host_config["NetworkMode"]
        if mode == "host":
            return None
        if mode.startswith("container:"):
            other = self.registry.get(mode.split(":", 1)[1])
            if not other.state.running:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            return f"/proc/{other.state.pid}/ns/net"
        netns: str = await self.networks.create_sandbox(c.id)
        c.endpoints = []
        for name, settings in self.endpoint_configs(c).items():
            await self.join(c, netns, name, settings)
        return netns

    def resolve_network(self, ref: str) -> tuple[str, bool]:
        net = self.networks.get(ref)
        return net.name, net.predefined

    def endpoint_configs(self, c: Container) -> dict[str, Any]:
        """The networks the container joins at start, NetworkMode's first (containers
        made before user-defined networks existed have no EndpointsConfig)."""
        if "EndpointsConfig" not in c.networking_config:
            c.networking_config = normalise_endpoints(c.host_config["NetworkMode"], None,
                                                      self.resolve_network)
        eps: dict[str, Any] = c.networking_config["EndpointsConfig"]
        return eps

    async def join(self, c: Container, netns: str, name: str, settings: dict[str, Any]) -> None:
        ep = await self.networks.connect(c.id, netns, name,
                                         from_doc(settings, EndpointSettings),
                                         port_options(c))
        c.endpoints.append(Endpoint(name, ep.network_id, ep.endpoint_id, ep.ip,
                                    ep.prefix_len, ep.gateway, ep.mac, ep.ip6,
                                    ep.prefix_len6, ep.gateway6))

    async def use_embedded_dns(self, c: Container) -> None:
        """A running container joined its first user-defined network: its resolv.conf
        now names the embedded DNS (as libnetwork's rebuildDNS; rewritten in place, the
        file is bind-mounted into the container)."""
        etc = plan_etc_files(c, self.networks, self.cfg, self.registry.get)
        if not await asyncio.to_thread(rewrite_resolv_conf, etc):
            log.info("%s: /etc/resolv.conf was modified, not switched to the embedded DNS",
                     c.id[:12])

    async def refresh_hosts(self, c: Container) -> None:
        """Rewrite a running container's /etc/hosts (after its links changed)."""
        etc = plan_etc_files(c, self.networks, self.cfg, self.registry.get)
        await asyncio.to_thread(rewrite_hosts, etc)

    async def open_remote_logs(self, c: Container) -> LogDriver | None:
        """A remote log driver connects before the run is made: as dockerd, a start
        fails when the endpoint is down (off the event loop: a dial may take long)."""
        target = log_target(c, self.paths)
        if target is None or not target.remote:
            return None
        try:
            return await asyncio.to_thread(open_remote, target.driver, target.info)
        except ValueError as e:
            raise SystemError_(f"failed to initialize logging driver: {e}") from None

    def follow_logs(self, c: Container, conmon_pid: int,
                    remote: LogDriver | None = None, pid: int = 0) -> None:
        """Hand the run's spool to the log pipeline (at start, and at daemon start);
        `pid`: the run's container process, when it runs."""
        target = log_target(c, self.paths)
        if target is not None:
            self.logs.follow(c.id, target,
                             lambda: conmon_pid > 0 and conmon.is_monitor_of(conmon_pid, c.id),
                             remote, conmon_pid, pid)
        elif remote is not None:
            remote.close()

    def conmon_spec(self, c: Container, mount_ns: str = "") -> conmon.ConmonSpec:
        bundle = self.paths.bundle(c.id)
        spool = os.path.join(bundle, new_spool_name(time.time_ns())) \
            if log_target(c, self.paths) is not None else ""
        return conmon.ConmonSpec(
            cid=c.id, name=c.name, bundle=bundle,
            persist_dir=self.paths.persist_dir(c.id), exit_dir=self.paths.exit_dir,
            log_path=spool, tty=c.tty, stdin=bool(c.config.get("OpenStdin")),
            runc=self.runtimes.of(c).binary, runc_root=self.runtimes.root,
            stdin_once=bool(c.config.get("StdinOnce")), mount_ns=mount_ns)

    async def teardown(self, c: Container) -> None:
        """Release what a running container held: network and rootfs mount, in parallel.

        Every step is idempotent, so this is also the undo of a half-made start.
        """
        if self.ports is not None:
            await self.ports.unpublish(c)

        async def network_down() -> None:
            mode = c.host_config["NetworkMode"]
            if mode.startswith("container:") or mode == "host":
                return
            try:
                await self.networks.release_sandbox(c.id)
            except Exception:  # noqa: BLE001 - teardown must go on
                log.exception("network teardown of %s", c.id)

        async def unmount() -> None:
            try:
                await asyncio.to_thread(self.images.unmount_rootfs, c.id)
            except Exception:  # noqa: BLE001
                log.exception("unmount of %s", c.id)
        await asyncio.gather(network_down(), unmount())
        if self.volumes is not None:
            await unmount_volumes(self.volumes, c)
        c.endpoints = []

    def remove_files(self, cid: str) -> None:
        """The container's rw layer and directories (worker thread; idempotent)."""
        purge(self.set_aside(cid))

    def set_aside(self, cid: str) -> list[str]:
        """Unmount the container's rootfs and move its directories aside (one rename
        each, to `.rm-<id>` beside them; worker thread): a removal need not wait for
        the deletes of their files (`purge`, later; the daemon start purges what a
        crash left). Returns the moved directories."""
        moved = []
        try:
            self.images.unmount_rootfs(cid)
        except Exception:  # noqa: BLE001 - best effort on a failure path
            log.exception("unmounting the rootfs of %s", cid)
        for path in (self.paths.container_dir(cid), self.paths.bundle(cid)):
            if path == self.paths.container_dir(cid) and self.images.rootfs_mounted(cid):
                log.error("rootfs of %s still mounted: its rw layer stays", cid[:12])
                continue
            aside = os.path.join(os.path.dirname(path), ASIDE + cid)
            try:
                os.rename(path, aside)
            except FileNotFoundError:
                continue
            except OSError:         # (an earlier attempt's .rm-<id> is not empty)
                shutil.rmtree(path, ignore_errors=True)
                continue
            moved.append(aside)
        return moved

    def purge_later(self, paths: list[str]) -> None:
        """Delete directories set aside, one removal at a time in a thread of their own
        (not the default executor's few workers, which starts wait for); the
        interpreter's exit waits for what is queued."""
        if paths:
            if self._purger is None:
                self._purger = ThreadPoolExecutor(1, "purge")
            self._purger.submit(purge, paths)


ASIDE = ".rm-"      # a removed container's directory, until purged


def purge(paths: list[str]) -> None:
    """Delete directories set aside (worker thread)."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


__all__ = ["ASIDE", "Runner", "exit_code_for_error", "purge"]
