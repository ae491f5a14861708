"""Legacy plugin discovery, client and registry (plugins/), against a small HTTP
plugin (tests/unit/httpserver.py) on a unix socket in a temp dir: no daemon, no root."""
from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from pydockerd.errors import NotFound, SystemError_
from pydockerd.plugins import (PluginCallError, PluginClient, PluginDirs, PluginRegistry,
                               PluginSpec, PluginUnavailable)
from pydockerd.plugins.client import MIME, backoff
from pydockerd.plugins.discovery import find, scan
from tests.unit.httpserver import Request, Server, json_response, response


def _dirs(tmp: Path) -> PluginDirs:
    for sub in ("run", "etc", "usr"):
        (tmp / sub).mkdir(exist_ok=True)
    return PluginDirs(str(tmp / "run"), (str(tmp / "etc"), str(tmp / "usr")))


def _unix_socket(path: Path) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    return s


def test_discovery_order_and_spec_files(tmp_path: Path) -> None:
    dirs = _dirs(tmp_path)
    assert find(dirs, "p1") is None
    (tmp_path / "usr" / "p1.spec").write_text("tcp://127.0.0.1:9\n")
    assert find(dirs, "p1") == PluginSpec("p1", "tcp://127.0.0.1:9")
    (tmp_path / "etc" / "p1").mkdir()
    (tmp_path / "etc" / "p1" / "p1.json").write_text(json.dumps(
        {"Addr": "https://127.0.0.1:9", "TLSConfig": {"CertFile": "/c", "KeyFile": "/k"}}))
    spec = find(dirs, "p1")
    assert spec is not None and spec.addr == "https://127.0.0.1:9"
    assert spec.tls is not None and spec.tls.cert_file == "/c"
    assert spec.tls.insecure_skip_verify            # no CAFile: as dockerd
    (tmp_path / "etc" / "p1.spec").write_text("unix:///x.sock")   # .spec before .json
    assert find(dirs, "p1") == PluginSpec("p1", "unix:///x.sock")
    s = _unix_socket(tmp_path / "run" / "p1" / "p1.sock")        # sockets win
    try:
        assert find(dirs, "p1") == PluginSpec("p1", f"unix://{tmp_path}/run/p1/p1.sock")
        assert scan(dirs) == ["p1"]
    finally:
        s.close()
    (tmp_path / "etc" / "p2.spec").write_text("no-scheme")
    with pytest.raises(SystemError_, match="Unknown protocol"):
        find(dirs, "p2")
    assert find(dirs, "../p1") is None and find(dirs, "") is None


def test_dirs_from_env() -> None:
    assert PluginDirs.from_env({}) == PluginDirs(
        "/run/docker/plugins", ("/etc/docker/plugins", "/usr/lib/docker/plugins"))
    assert PluginDirs.from_env({"PYDOCKERD_PLUGIN_SOCKET_DIR": "/a",
                                "PYDOCKERD_PLUGIN_SPEC_DIRS": "/b:/c"}) == \
        PluginDirs("/a", ("/b", "/c"))
    assert PluginRegistry.from_env({"PYDOCKERD_PLUGIN_RETRY_TIMEOUT": "2"}).retry_budget == 2


def test_backoff_is_dockerds() -> None:
    assert [backoff(n, 30) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]


async def _serve(sock_path: Path, seen: list[tuple[str, bytes, dict[str, str]]]) -> Server:
    async def handle(req: Request) -> bytes:
        method = req.path.lstrip("/")
        seen.append((method, req.body, req.headers))
        if method == "Plugin.Activate":
            return json_response({"Implements": ["VolumeDriver"]})
        if method == "Fail.Err":
            return json_response({"Err": "it broke"}, status=500)
        if method == "Fail.Text":
            return response(500, b"plain failure", {"Content-Type": "text/plain"})
        return json_response({"Echo": json.loads(req.body or b"null")})
    return await Server(handle).start(str(sock_path))


def test_client_calls_errors_and_registry(tmp_path: Path) -> None:
    dirs = _dirs(tmp_path)
    sock = tmp_path / "run" / "vp.sock"

    async def main() -> None:
        seen: list[tuple[str, bytes, dict[str, str]]] = []
        server = await _serve(sock, seen)
        try:
            client = PluginClient(PluginSpec("vp", f"unix://{sock}"), retry_budget=0.5)
            assert await client.call("X.Echo", {"a": 1}) == {"Echo": {"a": 1}}
            assert seen[-1][2]["accept"] == MIME
            with pytest.raises(PluginCallError, match=r"^Fail.Err: it broke$"):
                await client.call("Fail.Err", {})
            with pytest.raises(PluginCallError, match=r"^Fail.Text: plain failure$"):
                await client.call("Fail.Text", {})
            reg = PluginRegistry(dirs, retry_budget=0.5)
            p = await reg.get("vp", "VolumeDriver")
            assert p.implements == ("VolumeDriver",) and seen[-1][0] == "Plugin.Activate"
            assert seen[-1][1] == b""
            assert await reg.get("vp", "VolumeDriver") is p        # kept
            with pytest.raises(SystemError_, match="does not implement"):
                await reg.get("vp", "NetworkDriver")
            with pytest.raises(NotFound, match='plugin "nope" not found'):
                await reg.get("nope", "VolumeDriver")
            assert [q.name for q in await reg.all("VolumeDriver")] == ["vp"]
        finally:
            await server.close()
        # the plugin is gone (its socket file stays): refused, after the retries
        s = _unix_socket(sock) if not sock.exists() else None
        try:
            with pytest.raises(PluginUnavailable) as e:
                await client.call("X.Echo", {})
        finally:
            if s is not None:
                s.close()
        assert str(sock) in e.value.message and "X.Echo" in e.value.message
    asyncio.run(main())
