"""The daemon process: start-up and shutdown sequence, listeners, signals, reload,
around the services composition.py builds."""
from __future__ import annotations

import asyncio
import dataclasses
import grp
import logging
import os
import signal
import sys
import traceback
from typing import TYPE_CHECKING

from . import __version__
from .api.authz import Authorizer
from .api.server import ApiServer
from .composition import Services, compose, routes
from .config import JSON_KEYS, Config, load_config_file, logging_level, plugin_names, \
    validate
from .errors import DockerError, InvalidParameter
from .events import EventBus
from .instruments import Instruments
from .runtime.host import host_facts
from .runtime.pidwatch import pid_alive, set_child_subreaper, watch_children_by_pidfd
from .remap import load_idmap, remapped_root
from .store import Store
from .util.idmap import IDENTITY
from .util.fsatomic import write_atomic
from .util.memory import HeapTrimmer, release_free_memory
from .util.systemd import SystemdEnv, monotonic_usec, take_environment
from .util.tlsdefer import ensure_ssl

if TYPE_CHECKING:
    import ssl

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
    ensure_ssl()                # not loaded before (util/tlsdefer.py)
    import ssl
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cfg.tlscert, cfg.tlskey)
    if cfg.tlsverify:
        ctx.load_verify_locations(cfg.tlscacert)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class Daemon:
    def __init__(self, cfg: Config, config_file: str = "/etc/docker/daemon.json") -> None:
        self.cfg = cfg
        self.config_file = config_file
        self.events = EventBus()
        self.store: Store | None = None
        self.services: Services | None = None
        self.server: ApiServer | None = None
        self.authz: Authorizer | None = None
        self._authz_reload: asyncio.Task[None] | None = None
        self.metrics: MetricsServer | None = None
        self._stop = asyncio.Event()
        self.systemd = SystemdEnv()
        self._ready = False  # READY=1 sent: a reload may then report RELOADING=1
        self.trimmer = HeapTrimmer(lambda: self.events.published)

    async def start(self) -> None:
        cfg = self.cfg
        self.systemd = take_environment()
        for host in cfg.hosts:  # fail before touching anything
            if host.startswith("fd://"):
                self.systemd.select(host[len("fd://"):])
        _check_pidfile(cfg.pidfile)
        ids = IDENTITY
        if cfg.userns_remap:        # everything then lives under <data-root>/<uid>.<gid>
            ids = load_idmap(cfg.userns_remap)
            cfg = self.cfg = dataclasses.replace(cfg, data_root=remapped_root(cfg.data_root,
                                                                              ids))
            log.info("userns-remap %s: container root is host %d:%d", cfg.userns_remap,
                     *ids.root())
        for d in (cfg.data_root, cfg.exec_root):
            os.makedirs(d, mode=0o711, exist_ok=True)
        os.makedirs(os.path.dirname(cfg.pidfile) or ".", exist_ok=True)
        write_atomic(cfg.pidfile, str(os.getpid()))
        self._trap_signals()
        set_child_subreaper()
        watch_children_by_pidfd()
        log.debug("host facts: %s", host_facts())  # probed once, used by every spec
        self.store = Store(os.path.join(cfg.data_root, "pydockerd.db"))
        driver = _storage_driver(cfg)
        families = None
        if cfg.metrics_addr:        # prometheus_client is loaded only when asked for
            from .metrics import Families, MetricsServer
            families = Families()
        self.services = services = await compose(
            cfg, self.store, self.events, driver,
            families.instruments if families else Instruments(), ids)
        self.authz = Authorizer(services.plugins, services.managed.on_disable)
        try:
            await self.authz.set_plugins(cfg.authorization_plugins)
        except DockerError as e:
            raise DockerError(f"failed to validate authorization plugin: {e.message}") from None
        self.server = ApiServer(routes(services, self.events), self.authz)
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
        release_free_memory()   # what start-up allocated and dropped (issue 10: idle RSS)
        self.trimmer.start()    # and what later bursts of work drop

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
                  "max-concurrent-downloads", "max-concurrent-uploads", "max-download-attempts",
                  "authorization-plugins")

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
        try:
            if "authorization-plugins" in values:
                values["authorization-plugins"] = plugin_names(values["authorization-plugins"])
        except DockerError as e:
            log.error("SIGHUP: configuration not reloaded: %s", e.message)
            return
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
        if "authorization_plugins" in changes:
            self._reload_authz(self.cfg.authorization_plugins)
        if "debug" in changes or "log_level" in changes:
            logging.getLogger().setLevel(logging_level(self.cfg))
        log.info("SIGHUP: reloaded %s", ", ".join(f"{k}={v}" for k, v in changes.items()))
        engine_id = self.services.system.engine_id if self.services is not None else ""
        self.events.publish("daemon", "reload", engine_id, {
            "name": "pydockerd", **{k: str(v) for k, v in changes.items()}})

    def _reload_authz(self, names: tuple[str, ...]) -> None:
        """The new plugin chain applies once each plugin is activated (dockerd's
        validateAuthzPlugins); one that cannot be keeps the old chain (dockerd exits)."""
        authz = self.authz
        if authz is None:
            return

        async def apply() -> None:
            try:
                await authz.set_plugins(names)
                log.info("SIGHUP: authorization plugins now %s", list(names))
            except DockerError as e:
                log.error("SIGHUP: authorization plugins %s not loaded, %s kept: %s",
                          list(names), list(authz.names), e.message)
                self.cfg = dataclasses.replace(self.cfg, authorization_plugins=authz.names)
                if self.services is not None:
                    self.services.reload(self.cfg)
        if self._authz_reload is not None:
            self._authz_reload.cancel()
        self._authz_reload = asyncio.get_running_loop().create_task(apply())

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
        self.trimmer.stop()
        if self._authz_reload is not None:
            self._authz_reload.cancel()
        if self.authz is not None:
            await self.authz.late.close(grace=1.0)
        log.info("shutting down (timeout %ss)", self.cfg.shutdown_timeout)
        if self.server:
            await self.server.stop_accepting()
        s = self.services
        if s is not None:
            # the task runners first: the containers' shutdown is no task's end
            await s.swarm.close()
            # bounded as dockerd's (containers/shutdown.py)
            await s.containers.shutdown(self.cfg.shutdown_timeout)
        if self.server:
            # requests in flight get a moment; then every connection (events,
            # follow-logs, hijacked streams) is cancelled and awaited
            await self.server.finish(1.0)
        if self.metrics:
            await self.metrics.close()
        if s is not None:
            await s.execs.close()
            await s.health.close()
            # after the containers using its volumes; left running with live-restore
            await s.managed.shutdown(self.cfg.live_restore)
            await s.networks.stop()
            # unless live-restore left rootfs mounts below it
            await asyncio.to_thread(s.create_ns.release)
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
