"""Manager addresses as dockerd accepts them: host[:port], 2377 by default."""
from __future__ import annotations

import ipaddress
import re

from ..errors import InvalidParameter

DEFAULT_PORT = 2377
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")


def split_addr(addr: str) -> tuple[str, int]:
    """(host, port) of a remote address; InvalidParameter with dockerd's wording."""
    if not addr:
        raise InvalidParameter(f"invalid remoteAddr {addr!r}: invalid empty address")
    host, port = addr, str(DEFAULT_PORT)
    if addr.startswith("["):
        inner, sep, rest = addr[1:].partition("]")
        host = inner
        if rest:
            if not rest.startswith(":"):
                raise InvalidParameter(f"invalid remoteAddr \"{addr}\": bad address")
            port = rest[1:]
    elif addr.count(":") == 1:
        host, port = addr.split(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidParameter(f"invalid remoteAddr \"{addr}\": invalid port {port!r}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.match(host):
            raise InvalidParameter(f"invalid remoteAddr \"{addr}\": invalid host") from None
    return host, int(port)
