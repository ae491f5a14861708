"""Which URLs to try for a registry, and with which TLS settings (as dockerd does).

- https first, verified against the system CA bundle plus certs.d/<host>/*.crt,
  with client certificates from certs.d/<host>/*.cert + *.key;
- a registry listed in insecure-registries (name or CIDR), or whose address is
  loopback (127.0.0.0/8, ::1: Docker's default insecure CIDRs), gets https
  without verification and then plain http;
- Docker Hub names try the registry mirrors first.

PYDOCKERD_CERTS_DIR overrides cfg.certs_dir (dockerd has no such flag; tests use it).
"""
from __future__ import annotations

import errno
import glob
import ipaddress
import os
import socket
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..config import Config
from ..errors import InvalidParameter
from ..images.references import DEFAULT_DOMAIN
from ..util.tlsdefer import ensure_ssl

if TYPE_CHECKING:
    import ssl

HUB_REGISTRY = "registry-1.docker.io"
DEFAULT_INSECURE = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True)
class Endpoint:
    base: str                        # https://host:port (no trailing slash)
    host: str                        # host:port as in the reference / certs.d
    tls: ssl.SSLContext              # plain http too: for an https redirect or token
                                     # realm, verified unless the host is insecure (Go)
    mirror: bool = False

    def url(self, path: str) -> str:
        return self.base + path


def certs_dir(cfg: Config) -> str:
    return os.environ.get("PYDOCKERD_CERTS_DIR") or cfg.certs_dir


def _split_host(hostport: str) -> str:
    if hostport.startswith("["):
        return hostport[1:hostport.find("]")]
    return hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    if host == "localhost" or host.endswith(".localhost"):
        return [ipaddress.ip_address("127.0.0.1")]
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    out = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        except ValueError:
            continue
    return out


def is_insecure(cfg: Config, hostport: str) -> bool:
    """Blocking (may resolve the name): call from a thread."""
    names: list[str] = []
    nets = []
    for entry in (*cfg.insecure_registries, *DEFAULT_INSECURE):
        entry = entry.split("://", 1)[-1].rstrip("/")
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.append(entry)
    if hostport in names or _split_host(hostport) in names:
        return True
    if hostport == DEFAULT_DOMAIN:
        return False
    return any(addr in net for addr in _addresses(_split_host(hostport)) for net in nets
               if addr.version == net.version)


_CONTEXTS: OrderedDict[tuple[object, ...], ssl.SSLContext] = OrderedDict()  # LRU
_CONTEXTS_MAX = 8           # ~0.8 MiB each
_CONTEXTS_LOCK = threading.Lock()     # tls_context runs in worker threads

def _certs_state(d: str) -> tuple[tuple[object, ...], ...] | None:
    """What a context made from directory d depends on: for each entry its name and
    which file it is, as it is (None: no such directory). Inode and device too: a
    file replaced by one of the same size with its mtime kept (cp -p, rsync -a, tar)
    is another; and the ctime, which utime cannot set back: a rewrite in place
    changes it.

    As dockerd's loadTLSConfig (os.ReadDir): no directory is no certificates, a
    directory that cannot be read (not one, unreadable, a symlink loop) an invalid
    parameter; an entry that cannot be stat'ed is keyed by its error (the context's
    making ignores it unless its name is a .crt/.cert/.key it must read)."""
    try:
        entries = list(os.scandir(d))
    except FileNotFoundError:
        return None
    except OSError as err:
        op = "readdirent" if err.errno == errno.ENOTDIR else "open"
        raise InvalidParameter(f"{op} {d}: {(err.strerror or str(err)).lower()}") from None
    out: list[tuple[object, ...]] = []
    for entry in entries:
        try:
            st = entry.stat()
        except FileNotFoundError:
            continue
        except OSError as err:
            out.append((entry.name, "unreadable", err.errno))
            continue
        out.append((entry.name, st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev,
                    st.st_ctime_ns))
    return tuple(sorted(out))


def tls_context(cfg: Config, hostport: str, verify: bool) -> ssl.SSLContext:
    """Blocking (reads files). One context per certs.d state, kept: making one loads
    the system CA bundle (~20 ms, at the start of every pull, ~0.8 MiB); Go's dockerd
    loads the system pool once too. A host without a certs.d/<host>/ directory (the
    common case) gets one of two contexts (verified or not), whatever its name; a
    change under certs.d/<host>/ gives a new context. The last _CONTEXTS_MAX used
    are kept."""
    d = os.path.join(certs_dir(cfg), hostport)
    state = _certs_state(d)
    key: tuple[object, ...] = (verify, None) if state is None else (verify, d, state)
    with _CONTEXTS_LOCK:
        if (ctx := _CONTEXTS.get(key)) is not None:
            _CONTEXTS.move_to_end(key)
            return ctx
    ctx = _new_tls_context(d if state is not None else None, verify)
    with _CONTEXTS_LOCK:
        _CONTEXTS[key] = ctx
        _CONTEXTS.move_to_end(key)
        while len(_CONTEXTS) > _CONTEXTS_MAX:
            _CONTEXTS.popitem(last=False)
    return ctx

def _new_tls_context(d: str | None, verify: bool) -> ssl.SSLContext:
    """A context verified (or not) against the system CA bundle, with the CAs and
    client certificates of directory d (None: none)."""
    ensure_ssl()                # not loaded before the first registry call (util/tlsdefer.py)
    import ssl
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if d is not None and os.path.isdir(d):
        for ca in sorted(glob.glob(os.path.join(d, "*.crt"))):
            try:
                ctx.load_verify_locations(cafile=ca)
            except (ssl.SSLError, OSError) as e:
                raise InvalidParameter(f"invalid CA certificate {ca}: {e}") from None
        for cert in sorted(glob.glob(os.path.join(d, "*.cert"))):
            key = cert[:-len(".cert")] + ".key"
            if not os.path.exists(key):
                raise InvalidParameter(f"missing key {os.path.basename(key)} for client "
                                       f"certificate {os.path.basename(cert)}")
            try:
                ctx.load_cert_chain(cert, key)
            except (ssl.SSLError, OSError) as e:
                raise InvalidParameter(f"invalid client certificate {cert}: {e}") from None
        for key in glob.glob(os.path.join(d, "*.key")):
            if not os.path.exists(key[:-len(".key")] + ".cert"):
                raise InvalidParameter(f"missing client certificate "
                                       f"{os.path.basename(key)[:-4]}.cert for key "
                                       f"{os.path.basename(key)}")
    return ctx


def registry_endpoints(cfg: Config, domain: str) -> list[Endpoint]:
    """Blocking: the endpoints to try, in order, for a reference's domain."""
    out: list[Endpoint] = []
    if domain == DEFAULT_DOMAIN:
        for m in cfg.registry_mirrors:
            parts = urlsplit(m if "://" in m else "https://" + m)
            host = parts.netloc
            base = f"{parts.scheme}://{host}{parts.path.rstrip('/')}"
            tls = tls_context(cfg, host, not is_insecure(cfg, host))
            out.append(Endpoint(base, host, tls, mirror=True))
        host = HUB_REGISTRY
        out.append(Endpoint(f"https://{host}", host, tls_context(cfg, host, True)))
        return out
    insecure = is_insecure(cfg, domain)
    tls = tls_context(cfg, domain, not insecure)
    out.append(Endpoint(f"https://{domain}", domain, tls))
    if insecure:
        out.append(Endpoint(f"http://{domain}", domain, tls))
    return out


def index_name(server_address: str) -> str:
    """The registry host of a `docker login` server address (URL or host[:port])."""
    s = server_address.strip()
    if "://" in s:
        s = urlsplit(s).netloc
    s = s.rstrip("/").split("/", 1)[0]
    if s in ("", "docker.io", "index.docker.io", "registry-1.docker.io"):
        return DEFAULT_DOMAIN
    return s
