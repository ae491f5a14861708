"""systemd's two protocols: readiness notification and socket activation.

`take_environment()` reads NOTIFY_SOCKET and LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES
once and removes them from os.environ (as sd_listen_fds(unset_environment=1)
does), so no child inherits them: `runc start` with NOTIFY_SOCKET set would wait
for the container itself to send READY=1, i.e. hang.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import MutableMapping

from ..errors import InvalidParameter

log = logging.getLogger("pydockerd")

LISTEN_FDS_START = 3  # SD_LISTEN_FDS_START: the first passed fd
_VARIABLES = ("NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


@dataclass(frozen=True)
class ListenFd:
    fd: int
    name: str  # FileDescriptorName= of the .socket unit (default: the unit's name)


@dataclass(frozen=True)
class SystemdEnv:
    notify_socket: str | None = None
    listen_fds: tuple[ListenFd, ...] = ()

    def notify(self, *fields: str) -> None:
        """sd_notify(): send "KEY=value" lines to the service manager, if any."""
        if not self.notify_socket:
            return
        addr = self.notify_socket
        if addr.startswith("@"):  # abstract namespace
            addr = "\0" + addr[1:]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            try:
                s.connect(addr)
                s.send("\n".join(fields).encode())
            except OSError as e:
                log.warning("sd_notify failed: %s", e)

    def select(self, want: str) -> list[int]:
        """The fds an `fd://<want>` host names: "" or "*" = all, a number = that fd
        (dockerd's forms), anything else = the fds whose name is `want`."""
        if not self.listen_fds:
            raise InvalidParameter("no sockets found via socket activation: make sure the "
                                   "service was started by systemd (LISTEN_FDS, LISTEN_PID)")
        if want in ("", "*"):
            return [f.fd for f in self.listen_fds]
        if want.isdigit():
            if int(want) not in {f.fd for f in self.listen_fds}:
                raise InvalidParameter(f"fd://{want}: fd {want} was not passed by systemd "
                                       f"(LISTEN_FDS={len(self.listen_fds)})")
            return [int(want)]
        named = [f.fd for f in self.listen_fds if f.name == want]
        if not named:
            raise InvalidParameter(f"fd://{want}: no socket named {want} was passed by systemd "
                                   f"(names: {', '.join(f.name for f in self.listen_fds)})")
        return named


def take_environment(environ: MutableMapping[str, str] | None = None) -> SystemdEnv:
    """Read systemd's variables and remove them from `environ` (default os.environ).

    LISTEN_FDS counts only when LISTEN_PID names this process (the variables may
    have been inherited from a parent that was activated); passed fds get
    close-on-exec so no child keeps the API socket open.
    """
    env = os.environ if environ is None else environ
    values = {k: env.pop(k, None) for k in _VARIABLES}
    fds: tuple[ListenFd, ...] = ()
    if values["LISTEN_PID"] == str(os.getpid()) and (values["LISTEN_FDS"] or "").isdigit():
        n = int(values["LISTEN_FDS"] or "0")
        names = (values["LISTEN_FDNAMES"] or "").split(":") if values["LISTEN_FDNAMES"] else []
        names += ["unknown"] * (n - len(names))  # systemd's name for an unnamed fd
        fds = tuple(ListenFd(LISTEN_FDS_START + i, names[i]) for i in range(n))
        for f in fds:
            try:
                os.set_inheritable(f.fd, False)
            except OSError as e:
                raise InvalidParameter(f"socket activation: fd {f.fd}: {e}") from e
    return SystemdEnv(values["NOTIFY_SOCKET"] or None, fds)


def monotonic_usec() -> str:
    """MONOTONIC_USEC= for RELOADING=1 (CLOCK_MONOTONIC in microseconds)."""
    return f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


__all__ = ["ListenFd", "SystemdEnv", "monotonic_usec", "take_environment"]
