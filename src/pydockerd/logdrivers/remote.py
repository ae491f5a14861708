"""The drivers that send a container's logs elsewhere (syslog, journald, gelf, fluentd):
their option checks and how the pipeline opens one (see docs/ARCHITECTURE.md,
"Logging").

Every driver here follows the LogDriver protocol (message.py): `log(msg)` sends
(blocking mode: on the calling thread, which must not be the event loop's; it may
wait on a slow endpoint, and raises DriverClosed when `close()` is called from
another thread meanwhile, the message then not delivered), `commit()` returns {}
(what was handed to the kernel counts as delivered: at-least-once), `close()`
from any thread. Construction connects, so a container whose endpoint is down
does not start (ValueError with dockerd's text), except fluentd with
fluentd-async.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from .delivery import DEFAULT_RING_BYTES, NonBlocking, driver_options
from .message import LogDriver
from .golike import ram_in_bytes
from .tag import ContainerInfo
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    from . import fluentd, gelf, journald, syslog
else:   # loaded by the first container that uses one: an idle daemon (json-file) never
    # does (issue 10: idle memory)
    fluentd = lazy_import("pydockerd.logdrivers.fluentd")
    gelf = lazy_import("pydockerd.logdrivers.gelf")
    journald = lazy_import("pydockerd.logdrivers.journald")
    syslog = lazy_import("pydockerd.logdrivers.syslog")

REMOTE = ("syslog", "journald", "gelf", "fluentd")
_DRIVERS = {"syslog": syslog, "journald": journald, "gelf": gelf, "fluentd": fluentd}


def validate(driver: str, opts: Mapping[str, str]) -> None:
    """A remote driver's own options (names and values); ValueError with dockerd's
    text. `mode`/`max-buffer-size`/cache options are checked by the caller."""
    _DRIVERS[driver].validate(driver_options(opts))


def open_remote(driver: str, info: ContainerInfo,
                journald_socket: str | None = None) -> LogDriver:
    """A started driver for one container, wrapped for `mode=non-blocking`.
    ValueError (dockerd's text) when it cannot start. `journald_socket`: the
    journal's socket (default journald.SOCKET)."""
    inner: LogDriver
    if driver == "syslog":
        inner = syslog.SyslogDriver(info)
    elif driver == "journald":
        inner = journald.JournaldDriver(info, journald_socket or journald.SOCKET)
    elif driver == "gelf":
        inner = gelf.GelfDriver(info)
    elif driver == "fluentd":
        inner = fluentd.FluentdDriver(info)
    else:
        raise ValueError(f"logger: no remote log driver named {driver}")
    if info.options.get("mode") == "non-blocking":
        size = info.options.get("max-buffer-size")
        return NonBlocking(inner, ram_in_bytes(size) if size else DEFAULT_RING_BYTES,
                           f"logs-{info.id[:12]}")
    return inner
