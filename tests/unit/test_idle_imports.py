"""What the daemon loads before any request: the heavy client libraries only a
pull, push, remote build context or plugin call needs stay out (they are loaded by
util/lazy.lazy_import on first use). aiohttp alone was ~12 MiB of the idle daemon's
memory when a module imported it eagerly (issue 10: idle RSS)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from pydockerd.util.lazy import BuiltOnce

SRC = Path(__file__).resolve().parents[2] / "src"


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter that imports pydockerd from src/."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(SRC)), timeout=120, check=True)
# tarfile (and its compression modules) only an image load/save/push, a build, a
# `docker cp` or a plugin create needs; email.utils only ADD <url>; the builder is
# imported and its service built by the first build (composition._builder)
LAZY = ("aiohttp", "yarl", "multidict", "prometheus_client", "zstandard", "tarfile",
        "email.utils", "calendar", "pydockerd.builder.service", "pydockerd.builder.run",
        "pydockerd.builder.instructions",
        # the remote log drivers: loaded by the first container logging to one
        "pydockerd.logdrivers.fluentd", "pydockerd.logdrivers.gelf",
        "pydockerd.logdrivers.journald", "pydockerd.logdrivers.syslog",
        # the swarm agent's (about 25 MiB): loaded only when the node is in a swarm
        "grpc", "google", "h2", "cryptography",
        # ISA-L gzip (util/gzipfast.py): loaded by the first layer inflate or deflate
        "isal",
        # the distribution service (built by the first pull, push, login, search or
        # plugin install: composition._distribution), a plugin install's, a managed
        # plugin's runner and config (ManagedPlugins.installer, .runner)
        "pydockerd.distribution.service", "pydockerd.distribution.client",
        "pydockerd.distribution.pull", "pydockerd.distribution.push",
        "pydockerd.distribution.download", "pydockerd.plugins.managed.install",
        "pydockerd.plugins.managed.runner", "pydockerd.plugins.managed.config",
        # docker cp/export (composition._archive), the WebSocket attach, new images and
        # load/save (images/service.py), commit's changes, network and IPAM plugins
        "pydockerd.containers.archive", "pydockerd.api.routes.attach_ws",
        "pydockerd.api.websocket", "pydockerd.images.create", "pydockerd.images.transfer",
        "pydockerd.images.changes", "pydockerd.images.remove", "pydockerd.network.plugeps",
        "pydockerd.network.plugnets",
        # image loads (ImageState.loader), layer unpacking and tar-split (images/layers.py),
        # rotated logs' gzip (logdrivers/reader.py), `docker stats` and `top`
        "pydockerd.images.loader", "pydockerd.images.tarsafe", "pydockerd.images.tarsplit",
        "gzip", "pydockerd.containers.stats", "pydockerd.containers.top",
        # OpenSSL's digests (hashlib): the first digest (a pull, a load, a run's /etc files,
        # the ULA prefix of the first IPv6 network) loads them
        "hashlib",
        # ssl (libssl, libcrypto): cli.py imports asyncio without it, the first TLS user
        # loads it (util/tlsdefer.py); the HTTP client: the first plugin call or pull
        "ssl", "_ssl", "pydockerd.util.httpclient", "pydockerd.util.httpconn")


def test_the_daemon_modules_do_not_load_the_lazy_libraries() -> None:
    # lazy_import's stand-in is not in sys.modules: a name there was really imported;
    # cli is the daemon's entry (python3 -m pydockerd)
    code = ("import sys, pydockerd.cli, pydockerd.daemon\n"
            f"print(sorted(set(sys.modules) & set({LAZY!r})))")
    out = _python(code)
    assert out.stdout.strip() == "[]", out.stdout


def test_a_lazy_module_is_imported_on_first_read_from_any_thread() -> None:
    # several worker threads reading it first at once (pull/load extract in threads)
    code = ("import sys, threading\n"
            "from pydockerd.util.lazy import lazy_import\n"
            "m = lazy_import('colorsys')\n"
            "print('colorsys' in sys.modules)\n"
            "out = []\n"
            "ts = [threading.Thread(target=lambda: out.append(m.rgb_to_hsv(1, 0, 0)))\n"
            "      for _ in range(8)]\n"
            "[t.start() for t in ts]; [t.join() for t in ts]\n"
            "print('colorsys' in sys.modules, len(out), out[0])")
    out = _python(code)
    assert out.stdout.split("\n")[:2] == ["False", "True 8 (0.0, 1.0, 1)"], out.stdout


def test_the_ula_prefix_is_derived_on_first_use() -> None:
    # an idle daemon without IPv6 never hashes the engine id (hashlib stays out)
    code = ("import sys\n"
            "from pydockerd.network.state import NetworkOptions\n"
            "o = NetworkOptions('b0', None, None, 1500, False, False, True, True, '0.0.0.0',\n"
            "                   ula_seed='499d4bc0-b0b3-416f-b1ee-cf6486315593')\n"
            "print('hashlib' in sys.modules)\n"
            "print(o.pools6[0].base, o.pools6[0].size, 'hashlib' in sys.modules)")
    out = _python(code)
    assert out.stdout.split("\n")[:2] == ["False", "fd62:fb69:18af::/48 64 True"], out.stdout


def test_a_service_built_once_is_built_once_from_any_thread() -> None:
    # the distribution service: its first user may be a worker thread (a layer purge)
    # racing the event loop (a pull)
    built: list[object] = []
    start = threading.Barrier(8)

    def build() -> object:
        built.append(object())
        threading.Event().wait(0.05)      # a slow build: the other callers arrive meanwhile
        return built[-1]

    once = BuiltOnce(build)
    got: list[object] = []

    def call() -> None:
        start.wait()
        got.append(once())
    ts = [threading.Thread(target=call) for _ in range(8)]
    [t.start() for t in ts]
    [t.join(10) for t in ts]
    assert len(built) == 1 and len(got) == 8 and all(g is built[0] for g in got)


# util/tlsdefer.py: asyncio is imported without ssl (OpenSSL's libssl/libcrypto, ~4 MiB),
# which the first TLS user loads
_TLS_ROUND_TRIP = """
import asyncio, sys
async def main() -> bytes:
    import ssl
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(CERT, KEY)
    client_ctx = ssl.create_default_context(cafile=CERT)     # verifies the server
    async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write((await r.readline()).upper())
        await w.drain()
        w.close()
    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                         server_hostname="localhost")
    w.write(b"hello\\n")
    got = await r.readline()
    w.close()
    server.close()
    return got
print(asyncio.run(main()))
"""


def _self_signed(d: Path) -> tuple[str, str]:
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


def test_asyncio_serves_and_dials_tls_after_ensure_ssl(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    out = _python("import sys, pydockerd.cli\n"
                  "from pydockerd.util.tlsdefer import ensure_ssl\n"
                  "print('ssl' in sys.modules)\n"
                  # the finder out: this tests ensure_ssl's own repair
                  "sys.meta_path[:] = [f for f in sys.meta_path\n"
                  "                    if type(f).__name__ != '_RepairOnImport']\n"
                  "ensure_ssl()\n"
                  f"CERT, KEY = {cert!r}, {key!r}\n" + _TLS_ROUND_TRIP)
    assert out.stdout.split("\n")[:2] == ["False", "b'HELLO\\n'"], out.stdout


def test_a_library_importing_ssl_makes_asyncio_whole_too(tmp_path: Path) -> None:
    # no ensure_ssl: a plain `import ssl` (in _TLS_ROUND_TRIP) goes through tlsdefer's finder
    cert, key = _self_signed(tmp_path)
    out = _python("import pydockerd.cli, sys\n"
                  "import asyncio.sslproto as p\n"
                  "print(p.ssl, hasattr(p, 'SSLAgainErrors'))\n"
                  f"CERT, KEY = {cert!r}, {key!r}\n" + _TLS_ROUND_TRIP)
    assert out.stdout.split("\n")[:2] == ["None False", "b'HELLO\\n'"], out.stdout


def test_a_lookup_of_ssl_before_its_import_does_not_use_up_the_repair(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    out = _python("import pydockerd.cli, importlib.util\n"
                  "print(importlib.util.find_spec('ssl') is not None)\n"
                  f"CERT, KEY = {cert!r}, {key!r}\n" + _TLS_ROUND_TRIP)
    assert out.stdout.split("\n")[:2] == ["True", "b'HELLO\\n'"], out.stdout


def test_nothing_is_hidden_once_asyncio_is_imported() -> None:
    out = _python("import sys, asyncio\n"
                  "from pydockerd.util.tlsdefer import import_asyncio_without_ssl\n"
                  "print(import_asyncio_without_ssl(), 'ssl' in sys.modules,\n"
                  "      asyncio.base_events.ssl is sys.modules['ssl'])")
    assert out.stdout.strip() == "False True True", out.stdout


def test_an_asyncio_of_another_shape_gets_ssl_at_once() -> None:
    # as if other modules than the three known took `ssl = None`: nothing stays hidden
    out = _python("import sys\n"
                  "from pydockerd.util import tlsdefer\n"
                  "tlsdefer.ASYNCIO_SSL_USERS = ('asyncio.base_events',)\n"
                  "print(tlsdefer.import_asyncio_without_ssl(), 'ssl' in sys.modules)\n"
                  "import asyncio, asyncio.sslproto as p, asyncio.selector_events as s\n"
                  "print(p.ssl is s.ssl is asyncio.base_events.ssl is sys.modules['ssl'],\n"
                  "      p.SSLAgainErrors[0] is sys.modules['ssl'].SSLWantReadError)")
    assert out.stdout.split("\n")[:2] == ["False True", "True True"], out.stdout
