"""The container service: the one entry point the API, the builder and the other
services use. It composes the parts of containers/ (see docs/ARCHITECTURE.md):
the registry (records, names, persistence), the runner (bringing a run up and
down), the lifecycle verbs with the exit monitor and restart policy, and the
pending attachers; create, rename, update, prune and network connect live here.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, AsyncIterator, Awaitable

from ..config import Config
from ..errors import Conflict, DockerError, Forbidden, InvalidParameter, NotFound, NotImplementedErr
from ..instruments import NO_TIMER, ActionTimer
from ..logdrivers.pipeline import LogPipeline
from ..models import NetworkConnect, NetworkDisconnect, UpdateConfig, to_doc
from ..runtime import conmon
from ..runtime.runc import Runc
from ..util.filters import labels_match
from ..util.ids import new_id, now_rfc3339, random_name, to_unix, valid_name
from .attach import AttachSession, PendingAttachers
from .create import verify_userns
from .create import merge_image_config, normalise_endpoints, normalise_host_config, \
    plan_volumes, validate_config
from .deps import Images, Networks, Ports, RunObserver, SpecBuilder, Volumes
from . import links
from .lifecycle import Lifecycle
from .logs import LogEntry, LogQuery, read_logs
from .model import Container
from .mounts import create_volumes, remove_made
from .paths import Paths
from .registry import ContainerRegistry, name_conflict
from .restore import Loaded, load_containers, settle
from .runner import Runner
from .runtimes import Runtimes
from .shutdown import shutdown_containers
from .spec import update_resources
from .update import apply_update
from .volumesfrom import inherit

log = logging.getLogger("pydockerd.containers")


class ContainerService:
    def __init__(self, cfg: Config, registry: ContainerRegistry, paths: Paths,
                 runtimes: Runtimes, images: Images, networks: Networks,
                 volumes: Volumes | None, ports: Ports | None, spec: SpecBuilder,
                 observer: RunObserver | None, actions: ActionTimer = NO_TIMER) -> None:
        self.cfg = cfg
        self.registry = registry
        self.paths = paths
        self.runtimes = runtimes
        self.images = images
        self.networks = networks
        self.volumes = volumes
        self.attachers = PendingAttachers()
        self.log_pipeline = LogPipeline()
        self.runner = Runner(cfg, paths, runtimes, registry, images, networks, volumes, ports,
                             spec, observer, self.attachers, self.log_pipeline, actions)
        self.lifecycle = Lifecycle(cfg, paths, runtimes, registry, self.runner, volumes,
                                   observer, actions)
        self.actions = actions      # engine_daemon_container_actions_seconds
        self._loaded = Loaded([], [])     # loaded, locked, not settled yet

    def reload(self, cfg: Config) -> None:
        """SIGHUP: the reloadable options (live-restore) apply from now on."""
        self.cfg = self.runner.cfg = self.lifecycle.cfg = self.lifecycle.exits.cfg = cfg

    # ---- lookup -------------------------------------------------------------------

    def all(self) -> list[Container]:
        return self.registry.all()

    def get(self, ref: str) -> Container:
        return self.registry.get(ref)

    def find(self, cid: str) -> Container | None:
        return self.registry.find(cid)

    def lock(self, cid: str) -> asyncio.Lock:
        return self.registry.lock(cid)

    def save(self, c: Container) -> None:
        self.registry.commit(c)

    def event(self, c: Container, action: str, extra: dict[str, str] | None = None) -> None:
        self.registry.event(c, action, extra)

    def runtime(self, c: Container) -> Runc:
        return self.runtimes.of(c)

    # ---- create -------------------------------------------------------------------

    async def create(self, name: str | None, config: dict[str, Any],
                     host_config: dict[str, Any] | None,
                     networking_config: dict[str, Any] | None = None) -> Container:
        began = time.monotonic()
        validate_config(config)
        generated = not name
        if name:
            if not valid_name(name):
                raise InvalidParameter(f"Invalid container name ({name}), only "
                                       "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
            name = name.lstrip("/")
            owner = self.registry.owner_of_name(name)
            if owner is not None:
                raise name_conflict(name, owner)
        else:
            name = random_name()
            while self.registry.owner_of_name(name) is not None:
                name = random_name()
        image_ref = config.get("Image") or ""
        if not image_ref:
            raise InvalidParameter("no image specified" if not config.get("Image") else "")
        image = self.images.resolve(image_ref)
        hc = normalise_host_config(host_config, self.cfg.init, self.cfg.runtimes,
                                   self.cfg.default_runtime, self.cfg.log_driver,
                                   self.cfg.log_opts)
        if self.cfg.userns_remap:
            verify_userns(hc)
        mode = hc["NetworkMode"]
        if mode.startswith("container:"):
            other = self.get(mode.split(":", 1)[1])
            hc["NetworkMode"] = f"container:{other.id}"
        if mode == "bridge" and self.networks.bridge_gateway is None:
            raise NotFound("network bridge not found")
        networking_config = normalise_endpoints(hc["NetworkMode"], networking_config,
                                                self.runner.resolve_network)
        linked = links.register(list(hc.get("Links") or []), hc["NetworkMode"],
                                self.registry.get)
        img_cfg = (image.config or {}).get("config") or {}
        cfg = merge_image_config(config, img_cfg)
        cfg["Image"] = image_ref
        shared_volumes, shared_binds = inherit(hc, self.registry.get)
        volume_plan = plan_volumes(hc, cfg, {m.destination for m in shared_volumes}
                                   | {b.destination for b in shared_binds})
        if (volume_plan or shared_volumes) and self.volumes is None:
            raise NotImplementedErr("volumes are not available")
        if not cfg.get("Hostname") and not mode.startswith("container:") and mode != "host":
            cfg["Hostname"] = ""
        cid = new_id()
        if not cfg.get("Hostname"):
            cfg["Hostname"] = os.uname().nodename if mode == "host" else cid[:12]
        entry = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
        c = Container(id=cid, name=name, created=now_rfc3339(), image=image_ref,
                      image_id=image.id, config=cfg, host_config=hc, path=entry[0],
                      args=entry[1:], networking_config=dict(networking_config or {}),
                      links=linked, inherited_binds=shared_binds)
        cdir = self.paths.container_dir(cid)
        made_volumes: list[str] = []
        try:
            if self.volumes is not None:
                c.volumes = shared_volumes + await create_volumes(self.volumes, volume_plan,
                                                            made_volumes)
            os.makedirs(cdir, mode=0o710)
            await asyncio.to_thread(self.images.create_rw_layer, cid, image,
                                    not hc.get("AutoRemove"))
            c.hostname_path = os.path.join(cdir, "hostname")
            c.hosts_path = os.path.join(cdir, "hosts")
            c.resolv_conf_path = os.path.join(cdir, "resolv.conf")
            # a generated name taken by a concurrent create meanwhile (the rw layer
            # was made in a thread) is generated again
            self.registry.add(c, rename=random_name if generated else None)
        except BaseException:
            self.registry.forget(c)
            await asyncio.to_thread(self.runner.remove_files, cid)
            if self.volumes is not None:
                await remove_made(self.volumes, made_volumes)
            raise
        self.registry.event(c, "create")
        self.actions.observe("create", time.monotonic() - began)
        return c

    # ---- lifecycle verbs (lifecycle.py) -------------------------------------------

    async def start(self, ref: str) -> Container:
        return await self.lifecycle.start(ref)

    async def stop(self, ref: str, timeout: int | None = None,
                   signal: str | None = None) -> bool:
        return await self.lifecycle.stop(ref, timeout, signal)

    async def kill(self, ref: str, signal: str | int | None = None) -> None:
        await self.lifecycle.kill(ref, signal)

    async def restart(self, ref: str, timeout: int | None = None,
                      signal: str | None = None) -> None:
        await self.lifecycle.restart(ref, timeout, signal)

    async def pause(self, ref: str) -> None:
        await self.lifecycle.pause(ref)

    async def unpause(self, ref: str) -> None:
        await self.lifecycle.unpause(ref)

    async def wait(self, ref: str, condition: str = "not-running") -> Container:
        return await self.lifecycle.wait(ref, condition)

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        await self.lifecycle.remove(ref, force, volumes)

    async def remove_link(self, ref: str) -> None:
        """`docker rm --link /parent/alias`: the parent forgets the link (and a running
        parent's /etc/hosts loses its line)."""
        self.registry.get(ref)          # an unknown name is a 404, as in dockerd
        parent_name, _, alias = ref.strip("/").rpartition("/")
        if not parent_name:
            raise Conflict("Conflict, cannot remove the default link name of the container")
        parent = self.registry.get(parent_name)
        async with self.lifecycle.locked(parent):
            self.registry.commit(parent, links=[k for k in parent.links if k.alias != alias])
            if parent.state.running:
                await self.runner.refresh_hosts(parent)

    def link_names(self) -> dict[str, list[str]]:
        """container id -> the link names it is known by (`/parent/alias`)."""
        return links.names_by_child(self.registry.all())

    def inspect_links(self, c: Container) -> list[str] | None:
        """HostConfig.Links as inspect shows it (`/child:/parent/alias`)."""
        return links.inspect_links(c, self.registry.get)

    def sandbox_key(self, c: Container) -> str:
        """NetworkSettings.SandboxKey: the file pinning the running container's own
        network namespace (`nsenter --net=<key>` enters it, as with dockerd); "" when
        it has none (host or container: mode) or does not run."""
        mode = c.host_config.get("NetworkMode", "")
        if not c.state.running or mode == "host" or mode.startswith("container:"):
            return ""
        return self.networks.netns_path(c.id)

    # ---- rename / update / prune ----------------------------------------------------

    async def rename(self, ref: str, new_name: str) -> None:
        c = self.registry.get(ref)
        new_name = new_name.lstrip("/")
        if not new_name or not valid_name(new_name):
            raise InvalidParameter(f"Invalid container name ({new_name}), only "
                                   "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        if new_name == c.name:
            raise InvalidParameter("Renaming a container with the same name as its current "
                                   "name")
        async with self.lifecycle.locked(c):
            old = self.registry.rename(c, new_name)
        self.registry.event(c, "rename", {"oldName": "/" + old})

    async def update(self, ref: str, upd: UpdateConfig) -> list[str]:
        """`docker update` (the request was validated at the API edge)."""
        c = self.registry.get(ref)
        async with self.lifecycle.locked(c):
            c.state.check_update(c.id)
            plan = apply_update(c.id, c.host_config, upd)
            # recorded first, as dockerd does: a record that cannot be written (a full
            # disk) leaves the running container as it was
            old = c.host_config
            self.registry.commit(c, host_config=plan.host_config)
            if plan.resources_changed and c.state.running:
                try:
                    await self.runtimes.of(c).update(c.id, update_resources(plan.host_config))
                except DockerError:
                    self.registry.commit_fact(c, host_config=old)
                    raise
        self.registry.event(c, "update")
        return []

    async def prune(self, until: float = 0.0,
                    labels: list[str] | None = None) -> tuple[list[str], int]:
        deleted, reclaimed = [], 0
        for c in self.registry.all():
            if c.state.running or c.state.status == "restarting":
                continue
            if until and to_unix(c.created) >= until:
                continue
            if labels and not labels_match(c.labels, labels):
                continue
            reclaimed += await asyncio.to_thread(self.images.rw_size, c.id)
            await self.lifecycle.remove(c.id)
            deleted.append(c.id)
        return deleted, reclaimed

    # ---- networks -------------------------------------------------------------------

    async def connect_network(self, network: str, req: NetworkConnect) -> None:
        """`docker network connect`: join now if running; remembered for later starts.
        The EndpointSettings are kept as the client sent them (inspect shows them)."""
        c = self.registry.get(req.Container or "")
        net = self.networks.get(network)
        mode = c.host_config["NetworkMode"]
        if mode == "host" or net.driver == "host":
            raise Forbidden("container cannot be disconnected from host network or "
                            "connected to host network")
        if mode == "none" or mode.startswith("container:") or net.driver == "null":
            raise Forbidden("container sharing network namespace with another container or "
                            "host cannot be connected to any other network")
        async with self.lifecycle.locked(c):
            eps = dict(self.runner.endpoint_configs(c))
            if net.name in eps:
                raise Forbidden(f"endpoint with name {c.name} already exists in network "
                                f"{net.name}")
            checked = normalise_endpoints(net.name, {"EndpointsConfig": {
                net.name: to_doc(req.EndpointConfig) or {}}},
                self.runner.resolve_network)["EndpointsConfig"][net.name]
            if c.state.running:
                embedded = self.networks.uses_embedded_dns(c.id)
                await self.runner.join(c, self.networks.netns_path(c.id), net.name, checked)
                if not embedded and self.networks.uses_embedded_dns(c.id):
                    await self.runner.use_embedded_dns(c)
            eps[net.name] = checked
            self.registry.commit(c, networking_config={**c.networking_config,
                                                       "EndpointsConfig": eps})

    async def disconnect_network(self, network: str, req: NetworkDisconnect) -> None:
        c = self.registry.get(req.Container or "")
        net = self.networks.get(network)
        if c.host_config["NetworkMode"] == "host" or net.driver == "host":
            raise Forbidden("container cannot be disconnected from host network or "
                            "connected to host network")
        async with self.lifecycle.locked(c):
            eps = dict(self.runner.endpoint_configs(c))
            attached = self.networks.endpoint(c.id, net.id) is not None
            if net.name not in eps and not attached:
                raise Forbidden(f"container {c.id} is not connected to network {net.name}")
            if attached:
                await self.networks.disconnect(c.id, net.id)
            eps.pop(net.name, None)
            self.registry.commit(c, endpoints=[e for e in c.endpoints
                                               if e.network_id != net.id],
                                 networking_config={**c.networking_config,
                                                    "EndpointsConfig": eps})

    # ---- attach ---------------------------------------------------------------------

    def attach(self, ref: str) -> Awaitable[AttachSession]:
        """Checks at once (409 for a paused or restarting container), then an attach
        session: made now for a running container, else when it next starts."""
        c = self.registry.get(ref)
        if c.state.check_attach(ref):
            return AttachSession.connect(self.paths.bundle(c.id))
        return self.attachers.wait(c.id)

    def resize(self, ref: str, height: int, width: int) -> None:
        c = self.registry.get(ref)
        c.state.check_kill(c.id)        # "Container <id> is not running"
        conmon.resize(self.paths.bundle(c.id), height, width)

    # ---- daemon start / stop (restore.py, shutdown.py) ------------------------------

    async def restore(self) -> None:
        """Daemon start, before anything else: load, re-attach, lock what needs work."""
        self._loaded = await load_containers(self.lifecycle)

    async def settle(self, budget: float) -> None:
        """Then that work and the restarts, waited for at most `budget` seconds."""
        loaded, self._loaded = self._loaded, Loaded([], [])
        await settle(self.lifecycle, loaded, budget)

    def restoring(self, cid: str) -> bool:
        """Still being reconciled or restarted by the daemon start (treat as live)."""
        return cid in self.lifecycle.restoring

    async def shutdown(self, timeout: float) -> None:
        await shutdown_containers(self.lifecycle, timeout)
        await self.log_pipeline.close()

    def read_logs(self, c: Container, q: LogQuery) -> AsyncIterator[list[LogEntry]]:
        """Batches of `c`'s log entries; with `q.follow`, until it stops and its
        logs are all written."""
        def active() -> bool:
            return c.state.running or c.state.status == "restarting" \
                or self.log_pipeline.busy(c.id)

        async def changed(timeout: float) -> None:
            await self.log_pipeline.wait_change(c.id, timeout)
        return read_logs(c, self.paths, q, active, changed, self.log_pipeline)


__all__ = ["ContainerService"]
