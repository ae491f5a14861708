"""Authorization plugins (`--authorization-plugin`, `authorization-plugins` in
daemon.json, SIGHUP) through the docker CLI and the SDK, with tests/integration/
authz_helpers.py's plugin in a private plugin directory: what AuthZReq and AuthZRes see
(as dockerd 20.10 sends them), denials before and after the handler, a plugin that is
down or broken (requests fail closed), streams, hijacked connections, and the TLS user."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import docker
import pytest

from authz_helpers import AuthzPlugin, Rule
from conftest import DOCKER, cleanup_daemon, make_daemon, start_with_plugin_dirs
from plugin_helpers import free_port
from polling import wait_until
from registry_helpers import make_tls

NAME = "authz-t"
COMMON = {"Api-Version", "Docker-Experimental", "Ostype", "Server"}


def _start(d, sockets: Path) -> None:
    start_with_plugin_dirs(d, sockets, sockets.parent / "none", "4")


@pytest.fixture(scope="module")
def env(images_dir):
    base = Path(tempfile.mkdtemp(prefix="pdt-authz-", dir="/tmp"))
    sockets = base / "run-plugins"
    plugin = AuthzPlugin(str(base / "plugin"), str(sockets / f"{NAME}.sock")).start()
    d = make_daemon(base / "daemon", ["--authorization-plugin", NAME])
    try:
        _start(d, sockets)
        d.cli("load", "-i", str(images_dir / "busybox.tar"))
        yield d, plugin, base
    finally:
        plugin.answer = None
        plugin.deny_req.clear()
        plugin.deny_res.clear()
        if plugin.server is None:
            plugin.start()
        cleanup_daemon(d)
        plugin.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def authz(env):
    d, plugin, base = env
    plugin.seen.clear()
    try:
        yield d, plugin
    finally:
        plugin.answer = None
        plugin.deny_req.clear()
        plugin.deny_res.clear()
        if plugin.server is None:
            plugin.start()


def _raw(d, method: str, path: str, body: bytes | None = None,
         ctype: str = "application/json") -> tuple[int, bytes]:
    """One HTTP/1.0 request on the daemon's socket: status and the whole body."""
    head = f"{method} {path} HTTP/1.0\r\nHost: docker\r\n"
    if body is not None:
        head += f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(d.socket)
        s.sendall(head.encode() + b"\r\n" + (body or b""))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head_b, _, rest = data.partition(b"\r\n\r\n")
    status = int(head_b.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head_b.lower():
        out = b""
        while rest:
            size_s, _, rest = rest.partition(b"\r\n")
            size = int(size_s, 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2:]
        rest = out
    return status, rest


def test_allowed_requests_show_method_uri_headers_and_bodies(authz):
    d, plugin = authz
    cid = d.out("create", "--name", "az-ok", "-e", "FOO=bar", "busybox", "true").strip()
    try:
        [req] = plugin.asked("AuthZReq", "POST", r"/containers/create\?name=az-ok")
        assert req.uri.startswith("/v1.") and req.uri.endswith("/containers/create?name=az-ok")
        body = json.loads(req.body() or b"")
        assert body["Image"] == "busybox" and body["Env"] == ["FOO=bar"]
        h = req.req["RequestHeaders"]
        assert h["Content-Type"] == "application/json" and "User-Agent" in h
        assert "Host" not in h and "User" not in req.req       # no TLS: no user
        [res] = plugin.asked("AuthZRes", "POST", r"/containers/create\?name=az-ok")
        assert res.req["ResponseStatusCode"] == 201
        assert COMMON | {"Content-Type"} <= set(res.req["ResponseHeaders"])
        assert json.loads(res.body("ResponseBody") or b"")["Id"] == cid
        assert res.body() == req.body()
        # no JSON body: not sent; the response of a 204 has no status body
        d.cli("start", "az-ok")
        [start] = plugin.asked("AuthZRes", "POST", r"/containers/az-ok/start")
        assert start.req["ResponseStatusCode"] == 204 and "ResponseBody" not in start.req
        assert d.out("info", "--format", "{{json .Plugins.Authorization}}").strip() == \
            f'["{NAME}"]'
    finally:
        d.cli("rm", "-f", "az-ok", check=False)


def test_denied_run_creates_nothing(authz):
    d, plugin = authz
    plugin.deny_req.append(Rule("POST", r"/containers/create", "no new containers"))
    r = d.cli("run", "--name", "az-denied", "busybox", "true", check=False)
    assert r.returncode != 0
    assert "authorization denied by plugin authz-t: no new containers" in r.stderr_text
    assert "az-denied" not in d.out("ps", "-a", "--format", "{{.Names}}")
    client = docker.DockerClient(base_url=d.host, timeout=60)
    try:
        with pytest.raises(docker.errors.APIError) as e:
            client.containers.create("busybox", name="az-denied")
        assert e.value.status_code == 403
        assert e.value.explanation == "authorization denied by plugin authz-t: no new containers"
    finally:
        client.close()
    assert not plugin.asked("AuthZRes", "POST", r"/containers/create")


def test_authzres_replaces_a_buffered_answer(authz):
    d, plugin = authz
    d.cli("volume", "create", "az-vol")
    try:
        plugin.deny_res.append(Rule("GET", r"/volumes/az-vol$", "not for your eyes"))
        r = d.cli("volume", "inspect", "az-vol", check=False)
        assert r.returncode != 0 and \
            "authorization denied by plugin authz-t: not for your eyes" in r.stderr_text
        assert r.stdout_text.strip() in ("", "[]")
        [res] = plugin.asked("AuthZRes", "GET", r"/volumes/az-vol$")
        assert json.loads(res.body("ResponseBody") or b"")["Name"] == "az-vol"
        # as dockerd: the handler ran, only its answer is replaced
        plugin.deny_res.append(Rule("POST", r"/volumes/create", "too late"))
        status, body = _raw(d, "POST", "/volumes/create", b'{"Name": "az-vol2"}')
        assert (status, json.loads(body)) == \
            (403, {"message": "authorization denied by plugin authz-t: too late"})
        plugin.deny_res.clear()
        assert "az-vol2" in d.out("volume", "ls", "-q").split()
    finally:
        plugin.deny_res.clear()
        d.cli("volume", "rm", "-f", "az-vol", "az-vol2", check=False)


def test_a_handler_error_is_the_answer(authz):
    d, plugin = authz
    plugin.deny_res.append(Rule("GET", r"/containers/az-nosuch/json", "ignored"))
    status, body = _raw(d, "GET", "/v1.41/containers/az-nosuch/json")
    assert status == 404 and b"No such container" in body
    [res] = plugin.asked("AuthZRes", "GET", r"/containers/az-nosuch/json")
    assert "ResponseStatusCode" not in res.req and "ResponseBody" not in res.req
    assert set(res.req["ResponseHeaders"]) == COMMON
    # a refused API version: the experimental header is not set yet (dockerd's order)
    status, _ = _raw(d, "GET", "/v1.99/info")
    [res] = plugin.asked("AuthZRes", "GET", r"/v1.99/info")
    assert status == 400 and set(res.req["ResponseHeaders"]) == COMMON - {"Docker-Experimental"}
    # unknown routes never reach the plugin (dockerd's NotFoundHandler)
    assert _raw(d, "GET", "/v1.41/az-nosuch")[0] == 404
    assert not plugin.asked("AuthZReq", "GET", "az-nosuch$")


def test_plugin_errors_and_garbage_fail_closed(authz):
    d, plugin = authz
    plugin.fail_with(500, b'{"Err": "plugin broke"}')
    status, body = _raw(d, "GET", "/v1.41/version")
    assert (status, json.loads(body)["message"]) == \
        (500, "plugin authz-t failed with error: AuthZPlugin.AuthZReq: plugin broke")
    plugin.fail_with(200, b"garbage")
    status, body = _raw(d, "GET", "/v1.41/version")
    assert status == 500 and \
        json.loads(body)["message"].startswith("plugin authz-t failed with error: ")
    plugin.fail_with(200, b'{"Allow": false, "Err": "with err"}')
    status, body = _raw(d, "GET", "/v1.41/version")
    assert (status, json.loads(body)["message"]) == \
        (403, "authorization denied by plugin authz-t: ")
    plugin.fail_with(200, b'{"Allow": true, "Err": "with err"}')
    assert _raw(d, "GET", "/v1.41/version")[0] == 200


def test_a_plugin_that_is_down_fails_every_request(authz):
    d, plugin = authz
    plugin.stop()
    r = d.cli("ps", check=False)
    assert r.returncode != 0
    sock = plugin.socket_path.replace("/", "%2F")
    assert (f'plugin authz-t failed with error: Post "http://{sock}/AuthZPlugin.AuthZReq": '
            f"dial unix {plugin.socket_path}: connect: connection refused") in r.stderr_text
    plugin.start()
    d.cli("ps")


def test_streams_are_sent_as_they_come(authz):
    d, plugin = authz
    d.cli("run", "--name", "az-logs", "busybox", "sh", "-c", "echo one; echo two")
    try:
        assert d.out("logs", "-f", "az-logs").split() == ["one", "two"]
        [res] = plugin.asked("AuthZRes", "GET", r"/containers/[0-9a-f]+/logs\?.*follow=1")
        # flushed as it went: nothing left for AuthZRes (dockerd's ResponseModifier)
        assert not {"ResponseStatusCode", "ResponseHeaders", "ResponseBody"} & set(res.req)
        # a denial after the fact is appended to what was sent, as dockerd writes it
        plugin.deny_res.append(Rule("GET", r"/containers/az-logs/logs", "stop reading"))
        status, body = _raw(d, "GET", "/containers/az-logs/logs?stdout=1")
        assert status == 200 and b"one\n" in body and body.endswith(
            b'{"message":"authorization denied by plugin authz-t: stop reading"}\n')
    finally:
        d.cli("rm", "-f", "az-logs", check=False)


def test_a_stream_the_client_leaves_is_still_shown(authz):
    d, plugin = authz
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(d.socket)
        s.sendall(b"GET /v1.41/events HTTP/1.1\r\nHost: docker\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
    # as dockerd: the handler ends with the client, then AuthZRes (with nothing to see)
    [res] = wait_until(lambda: plugin.asked("AuthZRes", "GET", r"/v1.41/events$"),
                       timeout=10, what="AuthZRes of the events stream")
    assert not {"ResponseStatusCode", "ResponseHeaders", "ResponseBody"} & set(res.req)


def test_hijacked_attach_and_exec(authz):
    d, plugin = authz
    out = d.out("run", "-i", "--rm", "--name", "az-cat", "busybox", "cat", input="hello\n")
    assert out == "hello\n"
    [res] = plugin.asked("AuthZRes", "POST", r"/containers/[0-9a-f]+/attach\?")
    assert set(res.req["ResponseHeaders"]) == COMMON and "ResponseStatusCode" not in res.req
    d.cli("run", "-d", "--name", "az-exec", "busybox", "sleep", "60")
    try:
        # a denial after a hijack cannot reach the client any more: the output is there
        plugin.deny_res.append(Rule("POST", r"/exec/[0-9a-f]+/start", "too late"))
        assert d.out("exec", "az-exec", "echo", "hi") == "hi\n"
        [req] = plugin.asked("AuthZReq", "POST", r"/exec/[0-9a-f]+/start")
        assert json.loads(req.body() or b"")["Detach"] is False
        plugin.deny_req.append(Rule("POST", r"/exec/[0-9a-f]+/start", "no exec"))
        r = d.cli("exec", "az-exec", "echo", "hi", check=False)
        # the CLI says only this when its upgrade is refused (with dockerd too)
        assert r.returncode != 0 and "received 403" in r.stderr_text
    finally:
        plugin.deny_req.clear()
        d.cli("rm", "-f", "az-exec", check=False)


def test_request_bodies_over_the_limit_are_not_sent(authz):
    d, plugin = authz
    big = json.dumps({"Name": "az-big", "Labels": {"x": "y" * (1 << 20)}}).encode()
    status, _ = _raw(d, "POST", "/volumes/create", big)
    try:
        assert status == 201
        [req] = plugin.asked("AuthZReq", "POST", r"/volumes/create")
        assert "RequestBody" not in req.req
        status, _ = _raw(d, "POST", "/volumes/create", b'{"Name": "az-text"}', "text/plain")
        [_, req] = plugin.asked("AuthZReq", "POST", r"/volumes/create")
        assert "RequestBody" not in req.req
    finally:
        d.cli("volume", "rm", "-f", "az-big", "az-text", check=False)


def test_sighup_adds_and_removes_the_plugin(images_dir, tmp_path):
    sockets = tmp_path / "run-plugins"
    plugin = AuthzPlugin(str(tmp_path / "plugin"), str(sockets / f"{NAME}.sock")).start()
    plugin.deny_req.append(Rule("POST", r"/volumes/create", "reloaded"))
    d = make_daemon(tmp_path / "daemon")
    conf = tmp_path / "daemon" / "daemon.json"
    try:
        _start(d, sockets)
        d.cli("volume", "create", "az-h1")
        assert not plugin.seen
        conf.write_text(json.dumps({"authorization-plugins": [NAME]}))
        assert d.proc is not None
        d.proc.send_signal(signal.SIGHUP)

        def denied() -> bool:
            r = d.cli("volume", "create", "az-h2", check=False)
            return r.returncode != 0 and "denied by plugin authz-t: reloaded" in r.stderr_text
        wait_until(denied, timeout=20, interval=0.2)
        assert d.out("info", "--format", "{{json .Plugins.Authorization}}").strip() == \
            f'["{NAME}"]'
        conf.write_text(json.dumps({"authorization-plugins": []}))
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: d.cli("volume", "create", "az-h2", check=False).returncode == 0,
                   timeout=20, interval=0.2)
        # a reload naming a missing plugin keeps the chain it has
        conf.write_text(json.dumps({"authorization-plugins": ["az-nosuch"]}))
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "authorization plugins ['az-nosuch'] not loaded" in d.log_tail(200),
                   timeout=20, interval=0.2)
        d.cli("volume", "create", "az-h3")
        assert d.out("info", "--format", "{{json .Plugins.Authorization}}").strip() == "null"
    finally:
        cleanup_daemon(d)
        plugin.stop()


def test_start_fails_without_the_plugin(tmp_path):
    d = make_daemon(tmp_path / "daemon", ["--authorization-plugin", "az-nosuch"])
    with pytest.raises(RuntimeError, match="failed to validate authorization plugin: "
                                           'plugin "az-nosuch" not found'):
        _start(d, tmp_path / "run-plugins")
    cleanup_daemon(d)


def test_the_tls_client_certificate_names_the_user(images_dir, tmp_path):
    tls = make_tls(tmp_path / "certs")
    sockets = tmp_path / "run-plugins"
    plugin = AuthzPlugin(str(tmp_path / "plugin"), str(sockets / f"{NAME}.sock")).start()
    port = free_port()
    d = make_daemon(tmp_path / "daemon", [
        "--authorization-plugin", NAME, "-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
        "--tlscacert", tls["ca"], "--tlscert", tls["cert"], "--tlskey", tls["key"]])
    try:
        _start(d, sockets)
        env = dict(os.environ, DOCKER_HOST=f"tcp://127.0.0.1:{port}",
                   DOCKER_CONFIG=str(tmp_path / "cli"))
        r = subprocess.run([DOCKER, "--tlsverify", "--tlscacert", tls["ca"], "--tlscert",
                            tls["client_cert"], "--tlskey", tls["client_key"], "volume", "ls"],
                           env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        [req] = plugin.asked("AuthZReq", "GET", r"/volumes")
        assert (req.req["User"], req.req["UserAuthNMethod"]) == ("client", "TLS")
        assert len(req.req["RequestPeerCertificates"]) == 1
        # the unix socket has no certificate: no user
        d.cli("volume", "ls")
        assert "User" not in plugin.asked("AuthZReq", "GET", r"/volumes")[-1].req
    finally:
        cleanup_daemon(d)
        plugin.stop()
