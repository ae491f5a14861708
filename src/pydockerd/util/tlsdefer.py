"""ssl out of an idle daemon (issue 10: idle RSS).

asyncio imports ssl at its own import (base_events, selector_events and sslproto do
`try: import ssl except ImportError: ssl = None`), which maps OpenSSL's libssl and
libcrypto and builds _ssl's tables: ~4 MiB of RSS in a daemon that, without
--tls/--tlsverify, needs TLS only for a registry, a remote syslog, a plugin or a
swarm manager, if ever. So:

- `import_asyncio_without_ssl()`, the first statement of the daemon's entry
  (cli.py), imports asyncio with ssl hidden (asyncio's modules take `ssl = None`,
  as on a Python built without it), then un-hides it: any later `import ssl` gets
  the real module;
- `ensure_ssl()`, called by every TLS user before it makes a context, imports ssl
  and makes asyncio's modules whole again (their `ssl` and sslproto's
  `SSLAgainErrors`, the only module-level uses in Python 3.11, 3.12 and 3.13);
- any other import of ssl (a library's) makes them whole too: a finder on
  sys.meta_path, there from the hiding on (inert once ssl is loaded; never taken
  out, as another thread may be walking sys.meta_path), wraps whichever loader
  would load ssl (source, .pyc only, zip).

On another Python asyncio is imported as is; when other modules than those three
took `ssl = None` nothing stays hidden: ssl is imported at once, all repaired.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

# the Pythons whose asyncio this was read against: elsewhere asyncio is imported as is
KNOWN_PYTHONS = ((3, 11), (3, 12), (3, 13))
# asyncio's modules that take `ssl = None` when ssl cannot be imported (3.11-3.13)
ASYNCIO_SSL_USERS = ("asyncio.base_events", "asyncio.selector_events", "asyncio.sslproto")


def import_asyncio_without_ssl() -> bool:
    """Import asyncio, without ssl when that is safe; True when ssl was left out
    (ensure_ssl brings it)."""
    if sys.version_info[:2] not in KNOWN_PYTHONS or "asyncio" in sys.modules \
            or "ssl" in sys.modules:
        import asyncio  # noqa: F401  (an unknown asyncio, or too late: as is)
        return False
    before = set(sys.modules)
    sys.modules["ssl"] = None   # type: ignore[assignment]  # `import ssl` raises ImportError
    try:
        import asyncio  # noqa: F401,F811
    finally:
        del sys.modules["ssl"]
    ssl_less = {name for name in set(sys.modules) - before
                if (m := sys.modules[name]) is not None and vars(m).get("ssl", True) is None}
    if ssl_less != set(ASYNCIO_SSL_USERS):
        # not the asyncio this knows how to repair: no deferral, ssl loaded now
        import ssl
        _repair_asyncio(ssl, (*ASYNCIO_SSL_USERS, *sorted(ssl_less)))
        return False
    sys.meta_path.insert(0, _RepairOnImport())
    return True


def ensure_ssl() -> None:
    """Import ssl if need be and let asyncio use it: a TLS user calls this before it
    makes an SSLContext (then `import ssl` in that function is a dict look-up)."""
    import ssl
    _repair_asyncio(ssl)


def _repair_asyncio(ssl_module: ModuleType, names: Sequence[str] = ASYNCIO_SSL_USERS) -> None:
    for name in names:
        m = sys.modules.get(name)
        if m is not None and vars(m).get("ssl", ssl_module) is None:
            m.ssl = ssl_module                # type: ignore[attr-defined]
    sslproto = sys.modules.get("asyncio.sslproto")
    if sslproto is not None and "SSLAgainErrors" not in vars(sslproto):
        sslproto.SSLAgainErrors = (ssl_module.SSLWantReadError,  # type: ignore[attr-defined]
                                   ssl_module.SSLSyscallError)


class _RepairOnImport(importlib.abc.MetaPathFinder):
    """Finds ssl as the rest of sys.meta_path would, with a loader that repairs asyncio
    once ssl is executed. Never edits sys.meta_path (another thread may be iterating
    it: importlib._bootstrap._find_spec); inert once ssl is in sys.modules."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "ssl" or sys.modules.get("ssl") is not None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RepairAfterExec(spec.loader)
                return spec
        return None


class _RepairAfterExec(importlib.abc.Loader):
    """Any loader of ssl (source, sourceless .pyc, zipimport): its module, then asyncio repaired."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self._inner
        self._inner.exec_module(module)
        _repair_asyncio(module)

    def __getattr__(self, name: str) -> Any:      # get_source, get_code, is_package...
        return getattr(self._inner, name)
