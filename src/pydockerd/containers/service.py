"""Container lifecycle: create, start, stop, kill, restart, pause, wait, remove,
and what happens when a container exits (restart policies, auto-remove).
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal as _signal
from typing import Any, Callable

from ..config import Config
from ..errors import (Conflict, DockerError, Forbidden, InvalidParameter, NoSpace, NotFound,
                      NotImplementedErr, SystemError_)
from ..events import EventBus
from ..runtime import conmon
from ..runtime.pidwatch import wait_pid
from ..runtime.runc import Runc
from ..store import Store
from ..util.ids import new_id, now_rfc3339, random_name, to_unix, valid_name
from ..util.signals import parse_signal
from ..volumes import VolumeService
from .attach import AttachSession
from .etcfiles import write_etc_files
from .paths import Paths
from .ports import ContainerPorts
from .create import merge_image_config, normalise_endpoints, normalise_host_config, \
    plan_volumes, validate_config
from .mounts import create_volumes, mount_volumes, remove_anonymous, remove_made, unmount_volumes
from .model import Container, Endpoint, State
from .restart import RestartManager
from .restore import restore_containers, shutdown_containers
from ..util.filters import labels_match

log = logging.getLogger("pydockerd.containers")

KIND = "container"


class ContainerService:
    def __init__(self, cfg: Config, store: Store, events: EventBus, images: Any,
                 networks: Any) -> None:
        self.cfg = cfg
        self.store = store
        self.events = events
        self.images = images
        self.networks = networks
        self.paths = Paths(cfg.data_root, cfg.exec_root)
        self.runc = Runc(cfg.runtimes[cfg.default_runtime], self.paths.runc_root)
        self._containers: dict[str, Container] = {}
        self._names: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._exit_waiters: dict[str, list[asyncio.Future[Container]]] = {}
        self._removed_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._pending_attach: dict[str, list[asyncio.Future[AttachSession]]] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._restarts: dict[str, RestartManager] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.shutting_down = False
        # set by the daemon: hooks run at start (before runc start) / after exit
        self.spec_builder: Callable[[Container, str, str | None], dict[str, Any]] | None = None
        self.on_exit_hooks: list[Callable[[Container], Any]] = []
        self.on_start_hooks: list[Callable[[Container], Any]] = []
        # set by the daemon: named and anonymous volumes; published ports
        self.volumes: VolumeService | None = None
        self.ports: ContainerPorts | None = None

    # ---- lookup ---------------------------------------------------------------

    def all(self) -> list[Container]:
        return list(self._containers.values())

    def get(self, ref: str) -> Container:
        """Find by full id, name (with or without '/'), or unique id prefix."""
        if not ref:
            raise NotFound("No such container: ")
        c = self._containers.get(ref)
        if c:
            return c
        cid = self._names.get(ref.lstrip("/"))
        if cid:
            return self._containers[cid]
        matches = [c for i, c in self._containers.items() if i.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def runtime(self, c: Container) -> Runc:
        """The OCI runtime the container was created with (HostConfig.Runtime)."""
        name = c.host_config.get("Runtime") or self.cfg.default_runtime
        binary = self.cfg.runtimes.get(name)
        if binary is None:
            raise InvalidParameter(f"unknown or invalid runtime name: {name}")
        return self.runc if binary == self.runc.binary else Runc(binary, self.runc.root)

    def adopt(self, c: Container) -> None:
        """Register a container loaded from the store (daemon start-up)."""
        self._containers[c.id] = c
        self._names[c.name] = c.id

    def lock(self, cid: str) -> asyncio.Lock:
        return self._locks.setdefault(cid, asyncio.Lock())

    def save(self, c: Container) -> None:
        if c.id in self._containers:
            self.store.put(KIND, c.id, c.to_dict())

    def containers_using_image(self, image_id: str) -> list[str]:
        return [c.id for c in self._containers.values() if c.image_id == image_id]

    def containers_using_volume(self, name: str) -> list[str]:
        return [c.id for c in self._containers.values()
                if any(v.name == name for v in c.volumes)]

    def event(self, c: Container, action: str, extra: dict[str, str] | None = None) -> None:
        attrs = {"image": c.image, "name": c.name}
        attrs.update(c.labels)
        if extra:
            attrs.update(extra)
        self.events.publish("container", action, c.id, attrs)

    def cancel_background_tasks(self) -> None:
        for t in list(self._tasks):
            t.cancel()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    # ---- create -----------------------------------------------------------------

    async def create(self, name: str | None, config: dict[str, Any],
                     host_config: dict[str, Any] | None,
                     networking_config: dict[str, Any] | None = None) -> Container:
        validate_config(config)
        if name:
            if not valid_name(name):
                raise InvalidParameter(f"Invalid container name ({name}), only "
                                       "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
            name = name.lstrip("/")
            if name in self._names:
                raise Conflict(f"Conflict. The container name \"/{name}\" is already in use by "
                               f"container \"{self._names[name]}\". You have to remove (or "
                               "rename) that container to be able to reuse that name.")
        else:
            name = random_name()
            while name in self._names:
                name = random_name()
        image_ref = config.get("Image") or ""
        if not image_ref:
            raise InvalidParameter("no image specified" if not config.get("Image") else "")
        image = self.images.resolve(image_ref)
        hc = normalise_host_config(host_config, self.cfg.init, self.cfg.runtimes,
                                   self.cfg.default_runtime)
        mode = hc["NetworkMode"]
        if mode.startswith("container:"):
            other = self.get(mode.split(":", 1)[1])
            hc["NetworkMode"] = f"container:{other.id}"
        if mode == "bridge" and self.networks.bridge_gateway is None:
            raise NotFound("network bridge not found")
        networking_config = normalise_endpoints(hc["NetworkMode"], networking_config,
                                                self._resolve_network)
        img_cfg = (image.config or {}).get("config") or {}
        cfg = merge_image_config(config, img_cfg)
        cfg["Image"] = image_ref
        volume_plan = plan_volumes(hc, cfg)
        if volume_plan and self.volumes is None:
            raise NotImplementedErr("volumes are not available")
        if not cfg.get("Hostname") and not mode.startswith("container:") and mode != "host":
            cfg["Hostname"] = ""
        cid = new_id()
        if not cfg.get("Hostname"):
            cfg["Hostname"] = os.uname().nodename if mode == "host" else cid[:12]
        entry = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
        c = Container(id=cid, name=name, created=now_rfc3339(), image=image_ref,
                      image_id=image.id, config=cfg, host_config=hc, path=entry[0],
                      args=entry[1:], networking_config=dict(networking_config or {}))
        cdir = self.paths.container_dir(cid)
        made_volumes: list[str] = []
        try:
            if self.volumes is not None:
                c.volumes = create_volumes(self.volumes, volume_plan, made_volumes)
            os.makedirs(cdir, mode=0o710)
            await asyncio.to_thread(self.images.create_rw_layer, cid, image)
            if hc["LogConfig"]["Type"] != "none":
                c.log_path = os.path.join(cdir, f"{cid}-json.log")
            c.hostname_path = os.path.join(cdir, "hostname")
            c.hosts_path = os.path.join(cdir, "hosts")
            c.resolv_conf_path = os.path.join(cdir, "resolv.conf")
            self._containers[cid] = c
            self._names[name] = cid
            self.store.put(KIND, cid, c.to_dict())
        except BaseException:
            self._containers.pop(cid, None)
            self._names.pop(name, None)
            await asyncio.to_thread(self.remove_files, cid)
            if self.volumes is not None:
                await remove_made(self.volumes, made_volumes)
            raise
        self.event(c, "create")
        return c

    def remove_files(self, cid: str) -> None:
        try:
            self.images.remove_rw_layer(cid)
        except Exception:  # noqa: BLE001 - best effort on a failure path
            log.exception("removing rw layer of %s", cid)
        shutil.rmtree(self.paths.container_dir(cid), ignore_errors=True)
        shutil.rmtree(self.paths.bundle(cid), ignore_errors=True)

    # ---- start ------------------------------------------------------------------

    async def start(self, ref: str) -> Container:
        c = self.get(ref)
        async with self.lock(c.id):
            if c.state.status == "paused":
                raise Conflict("cannot start a paused container, try unpause instead")
            if c.state.status == "running":
                raise NotModifiedStart()
            if c.state.status == "removing":
                raise Conflict(f"container {c.id} is marked for removal and cannot be started")
            c.manually_stopped = False
            try:
                await self.start_locked(c)
            except DockerError:
                failed = True
            else:
                failed = False
        if failed and c.host_config.get("AutoRemove"):
            # dockerd removes an auto-remove container whose start failed
            err = c.state.error
            await self.remove(c.id, force=True, volumes=True)
            raise _start_error(err)
        if failed:
            raise _start_error(c.state.error)
        return c

    async def start_locked(self, c: Container) -> None:
        netns: str | None = None
        # the rootfs mount and the network sandbox are independent: do both at once
        mount = asyncio.ensure_future(asyncio.to_thread(
            self.images.mount_rootfs, c.id, self.images.resolve(c.image_id)))
        try:
            try:
                netns = await self._network_up(c)
            finally:
                rootfs = await mount
            if self.ports is not None:
                await self.ports.publish(c)
            if self.volumes is not None:
                await mount_volumes(self.volumes, c, rootfs)
            await asyncio.to_thread(write_etc_files, c, self.networks, self.cfg, self.get)
            assert self.spec_builder is not None
            spec = await asyncio.to_thread(self.spec_builder, c, rootfs, netns)
            cs = self._conmon_spec(c)
            started = await conmon.create(cs, spec)
            # attachers waiting for `docker run -it` connect before the process runs
            await self._connect_pending_attachers(c)
            try:
                await self.runtime(c).start(c.id)
            except DockerError:
                await self.runtime(c).delete(c.id, force=True)
                raise
        except BaseException as e:
            await self._teardown(c)
            msg = e.message if isinstance(e, DockerError) else str(e)
            c.state.error = msg
            c.state.exit_code = _exit_code_for_error(msg)
            if c.state.status == "running":
                c.state.status = "exited"
            self._fail_pending_attachers(c)
            self.save(c)
            raise
        c.state.to_running(started.pid, started.conmon_pid)
        c.has_been_started = True
        for hook in self.on_start_hooks:
            hook(c)
        self.save(c)
        self.event(c, "start")
        self.watch_exit(c)

    async def _network_up(self, c: Container) -> str | None:
        """Join or create the container's network namespace; returns its path."""
        mode = c.host_config["NetworkMode"]
        if mode == "host":
            return None
        if mode.startswith("container:"):
            other = self.get(mode.split(":", 1)[1])
            if not other.state.running:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            return f"/proc/{other.state.pid}/ns/net"
        netns: str = await self.networks.create_sandbox(c.id)
        c.endpoints = []
        for name, settings in self.endpoint_configs(c).items():
            await self._join(c, netns, name, settings)
        return netns

    def _resolve_network(self, ref: str) -> tuple[str, bool]:
        net = self.networks.get(ref)
        return net.name, net.predefined

    def endpoint_configs(self, c: Container) -> dict[str, Any]:
        """The networks the container joins at start, NetworkMode's first (containers
        made before user-defined networks existed have no EndpointsConfig)."""
        if "EndpointsConfig" not in c.networking_config:
            c.networking_config = normalise_endpoints(c.host_config["NetworkMode"], None,
                                                      self._resolve_network)
        eps: dict[str, Any] = c.networking_config["EndpointsConfig"]
        return eps

    async def _join(self, c: Container, netns: str, name: str,
                    settings: dict[str, Any]) -> None:
        ipam = settings.get("IPAMConfig") or {}
        ep = await self.networks.connect(
            c.id, netns, name, mac=settings.get("MacAddress") or None,
            ip=ipam.get("IPv4Address") or None, aliases=settings.get("Aliases") or ())
        c.endpoints.append(Endpoint(name, ep.network_id, ep.endpoint_id, ep.ip,
                                    ep.prefix_len, ep.gateway, ep.mac))

    async def connect_network(self, ref: str, network: str, settings: dict[str, Any]) -> None:
        """`docker network connect`: join now if running; remembered for later starts."""
        c = self.get(ref)
        net = self.networks.get(network)
        mode = c.host_config["NetworkMode"]
        if mode == "host" or net.driver == "host":
            raise Forbidden("container cannot be disconnected from host network or "
                            "connected to host network")
        if mode == "none" or mode.startswith("container:") or net.driver == "null":
            raise Forbidden("container sharing network namespace with another container or "
                            "host cannot be connected to any other network")
        async with self.lock(c.id):
            eps = self.endpoint_configs(c)
            if net.name in eps:
                raise Forbidden(f"endpoint with name {c.name} already exists in network "
                                f"{net.name}")
            checked = normalise_endpoints(net.name, {"EndpointsConfig": {
                net.name: settings}}, self._resolve_network)["EndpointsConfig"][net.name]
            if c.state.running:
                await self._join(c, self.networks.netns_path(c.id), net.name, checked)
            eps[net.name] = checked
            self.save(c)

    async def disconnect_network(self, ref: str, network: str, force: bool = False) -> None:
        c = self.get(ref)
        net = self.networks.get(network)
        if c.host_config["NetworkMode"] == "host" or net.driver == "host":
            raise Forbidden("container cannot be disconnected from host network or "
                            "connected to host network")
        async with self.lock(c.id):
            eps = self.endpoint_configs(c)
            attached = self.networks.endpoint(c.id, net.id) is not None
            if net.name not in eps and not attached:
                raise Forbidden(f"container {c.id} is not connected to network {net.name}")
            if attached:
                await self.networks.disconnect(c.id, net.id)
            c.endpoints = [e for e in c.endpoints if e.network_id != net.id]
            eps.pop(net.name, None)
            self.save(c)

    def _conmon_spec(self, c: Container) -> conmon.ConmonSpec:
        return conmon.ConmonSpec(
            cid=c.id, name=c.name, bundle=self.paths.bundle(c.id),
            persist_dir=self.paths.persist_dir(c.id), exit_dir=self.paths.exit_dir,
            log_path=c.log_path, tty=c.tty, stdin=bool(c.config.get("OpenStdin")),
            runc=self.runtime(c).binary, runc_root=self.runc.root,
            stdin_once=bool(c.config.get("StdinOnce")))

    async def _teardown(self, c: Container) -> None:
        """Release what a running container held: network and rootfs mount, in parallel.

        Both steps are idempotent, so this is also the undo of a half-made start.
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

    # ---- exit handling ------------------------------------------------------------

    def watch_exit(self, c: Container) -> None:
        old = self._watchers.get(c.id)
        if old and not old.done():
            return
        self._watchers[c.id] = self._spawn(self._wait_exit(c.id, c.state.conmon_pid))

    async def _wait_exit(self, cid: str, conmon_pid: int) -> None:
        await wait_pid(conmon_pid)
        if self.shutting_down and self.cfg.live_restore:
            return
        c = self._containers.get(cid)
        if c is None or c.state.conmon_pid != conmon_pid:
            return
        await self._handle_exit(c)

    async def _handle_exit(self, c: Container) -> None:
        async with self.lock(c.id):
            await self.record_exit(c)
        self.event(c, "die", {"exitCode": str(c.state.exit_code),
                               "execDuration": str(int(to_unix(c.state.finished_at)
                                                       - to_unix(c.state.started_at)))})
        for fut in self._exit_waiters.pop(c.id, []):
            if not fut.done():
                fut.set_result(c)
        for hook in self.on_exit_hooks:
            hook(c)
        if self.shutting_down:
            return
        ran_for = to_unix(c.state.finished_at) - to_unix(c.state.started_at)
        mgr = self._restarts.setdefault(c.id, RestartManager())
        if mgr.should_restart(c.host_config["RestartPolicy"], c.state.exit_code,
                              c.restart_count, c.manually_stopped, ran_for):
            c.state.status = "restarting"
            self.save(c)
            self._spawn(self._restart_later(c, mgr.delay))
        elif c.host_config.get("AutoRemove"):
            try:
                await self.remove(c.id, force=True, volumes=True)
            except NotFound:
                pass

    async def record_exit(self, c: Container) -> None:
        status = conmon.collect_exit(self._conmon_spec(c))
        await asyncio.gather(self.runtime(c).delete(c.id, force=True), self._teardown(c))
        c.state.to_exited(137 if status.code is None else status.code, status.oom_killed)
        if status.oom_killed:
            self.event(c, "oom")
        try:
            self.save(c)
        except NoSpace as e:   # the exit file stays under the exec root: read at next start
            log.error("%s: exit not recorded: %s", c.id[:12], e.message)

    async def _restart_later(self, c: Container, delay: float) -> None:
        await asyncio.sleep(delay)
        async with self.lock(c.id):
            if c.id not in self._containers or c.state.status != "restarting" \
                    or c.manually_stopped:
                return
            c.restart_count += 1
            try:
                await self.start_locked(c)
            except DockerError as e:
                log.warning("restarting %s failed: %s", c.id[:12], e.message)
                c.state.status = "exited"
                self.save(c)
                return
        self.event(c, "restart")

    # ---- stop / kill / restart / pause --------------------------------------------

    async def kill(self, ref: str, signal: str | int | None = None) -> None:
        c = self.get(ref)
        sig = parse_signal(signal, _signal.SIGKILL)
        if c.state.status == "restarting" and sig in (_signal.SIGKILL, _signal.SIGTERM):
            c.manually_stopped = True
        if not c.state.running:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        if sig == _signal.SIGKILL:
            c.manually_stopped = True
        self.event(c, "kill", {"signal": str(sig)})
        if c.state.status == "paused" and sig == _signal.SIGKILL:
            await self.runtime(c).kill(c.id, sig, all_procs=True)
            try:
                await self.runtime(c).resume(c.id)
            except DockerError:
                pass
            return
        try:
            os.kill(c.state.pid, sig)
        except ProcessLookupError:
            pass

    async def stop(self, ref: str, timeout: int | None = None,
                   signal: str | None = None) -> bool:
        """Returns False when the container was not running (HTTP 304)."""
        c = self.get(ref)
        if c.state.status == "restarting":
            c.manually_stopped = True
            c.state.status = "exited"
            self.save(c)
            return True
        if not c.state.running:
            c.manually_stopped = True
            self.save(c)
            return False
        c.manually_stopped = True
        self.save(c)
        sig = parse_signal(signal or c.config.get("StopSignal") or "SIGTERM")
        if timeout is None:
            st = c.config.get("StopTimeout")
            timeout = 10 if st is None else int(st)
        exited = self._next_exit(c)
        if c.state.status == "paused":
            await self.runtime(c).kill(c.id, sig, all_procs=False)
            await self.runtime(c).resume(c.id)
        else:
            try:
                os.kill(c.state.pid, sig)
            except ProcessLookupError:
                pass
        try:
            if timeout < 0:
                await exited
            else:
                await asyncio.wait_for(asyncio.shield(exited), timeout)
        except asyncio.TimeoutError:
            log.info("container %s did not stop within %ss; killing", c.id[:12], timeout)
            if c.state.running:
                try:
                    os.kill(c.state.pid, _signal.SIGKILL)
                except ProcessLookupError:
                    pass
            await exited
        self.event(c, "stop")
        return True

    def _next_exit(self, c: Container) -> asyncio.Future[Container]:
        fut: asyncio.Future[Container] = asyncio.get_running_loop().create_future()
        self._exit_waiters.setdefault(c.id, []).append(fut)
        return fut

    async def restart(self, ref: str, timeout: int | None = None,
                      signal: str | None = None) -> None:
        c = self.get(ref)
        if c.state.running:
            await self.stop(c.id, timeout, signal)
        async with self.lock(c.id):
            c.manually_stopped = False
            if not c.state.running:
                await self.start_locked(c)
        self.event(c, "restart")

    async def pause(self, ref: str) -> None:
        c = self.get(ref)
        async with self.lock(c.id):
            if c.state.status == "paused":
                raise Conflict(f"Container {c.id} is already paused")
            if c.state.status != "running":
                raise Conflict(f"Container {c.id} is not running")
            await self.runtime(c).pause(c.id)
            c.state.to_paused()
            self.save(c)
        self.event(c, "pause")

    async def unpause(self, ref: str) -> None:
        c = self.get(ref)
        async with self.lock(c.id):
            if c.state.status != "paused":
                raise Conflict(f"Container {c.id} is not paused")
            await self.runtime(c).resume(c.id)
            c.state.to_unpaused()
            self.save(c)
        self.event(c, "unpause")

    # ---- wait -------------------------------------------------------------------

    async def wait(self, ref: str, condition: str = "not-running") -> Container:
        c = self.get(ref)
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise InvalidParameter(f"invalid condition: {condition!r}")
        if condition == "removed":
            fut_r: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._removed_waiters.setdefault(c.id, []).append(fut_r)
            await fut_r
            return c
        if condition in ("not-running", "") and not c.state.running \
                and c.state.status != "restarting":
            return c
        return await self._next_exit(c)

    # ---- remove / rename --------------------------------------------------------------

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        if c.state.running or c.state.status == "restarting":
            if not force:
                what = "paused" if c.state.status == "paused" else "running"
                raise Conflict(f"cannot remove container \"/{c.name}\": container is {what}: "
                               "stop the container before removing or force remove")
            c.manually_stopped = True
            if c.state.status == "restarting":
                c.state.status = "exited"
            else:
                exited = self._next_exit(c)
                await self.kill(c.id, _signal.SIGKILL)
                await exited
        async with self.lock(c.id):
            if c.id not in self._containers:
                return
            c.state.status = "removing"
            try:
                self.save(c)     # a crash from here on: the next start finishes the removal
            except NoSpace:
                pass             # a full disk: the files go first, which makes room
            await asyncio.to_thread(self.remove_files, c.id)
            with self.store.transaction():   # NoSpace: not removed, `rm` can be retried
                for eid in list(c.exec_ids):
                    self.store.delete("exec", eid)
                self.store.delete(KIND, c.id)
            del self._containers[c.id]
            self._names.pop(c.name, None)
        self._locks.pop(c.id, None)
        self._restarts.pop(c.id, None)
        if volumes and self.volumes is not None:
            await remove_anonymous(self.volumes, c)
        self.event(c, "destroy")
        for fut in self._removed_waiters.pop(c.id, []):
            if not fut.done():
                fut.set_result(None)
        for fut2 in self._exit_waiters.pop(c.id, []):
            if not fut2.done():
                fut2.set_result(c)

    def rename(self, ref: str, new_name: str) -> None:
        c = self.get(ref)
        new_name = new_name.lstrip("/")
        if not new_name or not valid_name(new_name):
            raise InvalidParameter(f"Invalid container name ({new_name}), only "
                                   "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        if new_name == c.name:
            raise InvalidParameter("Renaming a container with the same name as its current "
                                   "name")
        if new_name in self._names:
            raise Conflict(f"Conflict. The container name \"/{new_name}\" is already in use by "
                           f"container \"{self._names[new_name]}\". You have to remove (or "
                           "rename) that container to be able to reuse that name.")
        old = c.name
        del self._names[old]
        c.name = new_name
        self._names[new_name] = c.id
        self.save(c)
        self.event(c, "rename", {"oldName": "/" + old})

    async def prune(self, until: float = 0.0, labels: list[str] | None = None) -> tuple[list[str], int]:
        deleted, reclaimed = [], 0
        for c in list(self._containers.values()):
            if c.state.running or c.state.status == "restarting":
                continue
            if until and to_unix(c.created) >= until:
                continue
            if labels and not labels_match(c.labels, labels):
                continue
            reclaimed += await asyncio.to_thread(self.images.rw_size, c.id)
            await self.remove(c.id)
            deleted.append(c.id)
        return deleted, reclaimed

    # ---- top / update -------------------------------------------------------------

    async def update(self, ref: str, body: dict[str, Any]) -> list[str]:
        from .spec import update_resources
        c = self.get(ref)
        hc = dict(c.host_config)
        rp = body.get("RestartPolicy")
        if rp and rp.get("Name"):
            if hc.get("AutoRemove") and rp["Name"] not in ("no", ""):
                raise InvalidParameter("Restart policy cannot be updated because AutoRemove "
                                       "is enabled for the container")
            hc["RestartPolicy"] = {"Name": rp["Name"],
                                   "MaximumRetryCount": int(rp.get("MaximumRetryCount") or 0)}
        changed = [k for k in _UPDATABLE if body.get(k) not in (None, 0, "")]
        for key in changed:
            hc[key] = body[key]
        hc = normalise_host_config(hc, self.cfg.init)
        if changed and c.state.running:
            await self.runtime(c).update(c.id, update_resources(hc))
        c.host_config = hc
        self.save(c)
        self.event(c, "update")
        return []

    # ---- attach -------------------------------------------------------------------

    async def attach(self, ref: str) -> AttachSession:
        """An attach session; waits for the start when the container is only created."""
        c = self.get(ref)
        if c.state.status == "running" or c.state.status == "paused":
            return await AttachSession.connect(self.paths.bundle(c.id))
        if c.state.status in ("created", "exited", "restarting"):
            fut: asyncio.Future[AttachSession] = asyncio.get_running_loop().create_future()
            self._pending_attach.setdefault(c.id, []).append(fut)
            return await fut
        raise Conflict("You cannot attach to a stopped container, start it first")

    async def _connect_pending_attachers(self, c: Container) -> None:
        for fut in self._pending_attach.pop(c.id, []):
            if fut.done():
                continue
            try:
                fut.set_result(await AttachSession.connect(self.paths.bundle(c.id)))
            except OSError as e:
                fut.set_exception(SystemError_(f"attach failed: {e}"))

    def _fail_pending_attachers(self, c: Container) -> None:
        for fut in self._pending_attach.pop(c.id, []):
            if not fut.done():
                fut.set_exception(SystemError_(c.state.error or "container failed to start"))

    def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        conmon.resize(self.paths.bundle(c.id), height, width)

    # ---- daemon start / stop: see restore.py ---------------------------------

    async def restore(self) -> None:
        await restore_containers(self)

    async def shutdown(self, timeout: float) -> None:
        await shutdown_containers(self, timeout)


# HostConfig resources `docker update` may change on a live container
_UPDATABLE = ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuQuota",
              "CpuPeriod", "CpusetCpus", "CpusetMems", "PidsLimit", "BlkioWeight")


class NotModifiedStart(DockerError):
    """Starting a running container: 304, empty body."""
    status = 304

    def __init__(self) -> None:
        super().__init__("container already started")


def _exit_code_for_error(msg: str) -> int:
    if "executable file not found" in msg or "no such file or directory" in msg:
        return 127
    if "permission denied" in msg:
        return 126
    return 128


def _start_error(msg: str) -> DockerError:
    full = f"failed to create task for container: {msg}: unknown" \
        if msg.startswith("OCI runtime") else msg
    code = _exit_code_for_error(msg)
    if code in (126, 127):
        return InvalidParameter(full)
    return SystemError_(full)


__all__ = ["ContainerService", "Paths", "NotModifiedStart", "State"]
