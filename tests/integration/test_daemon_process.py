"""The daemon process itself: flags, daemon.json, socket permissions, TCP/TLS, signals."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from polling import wait_until

ROOT = Path(__file__).resolve().parents[2]


def pydockerd(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "pydockerd", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def test_config_file_conflicts_and_unknown_keys(tmp_path):
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"debug": True, "data-root": "/tmp/x"}))
    r = pydockerd("--config-file", str(cfg), "--data-root", "/tmp/y", "--validate")
    assert r.returncode != 0
    assert "both as a flag and in the configuration file" in r.stderr and "data-root" in r.stderr
    cfg.write_text(json.dumps({"no-such-option": 1}))
    r = pydockerd("--config-file", str(cfg), "--validate")
    assert r.returncode != 0 and "no-such-option" in r.stderr
    cfg.write_text(json.dumps({"debug": True, "bip": "10.250.0.1/24"}))
    r = pydockerd("--config-file", str(cfg), "--validate")
    assert r.returncode == 0 and "configuration OK" in r.stdout
    r = pydockerd("--config-file", str(cfg), "--bip", "not-a-cidr", "--validate")
    assert r.returncode != 0


def test_stray_arguments_print_usage(tmp_path):
    r = pydockerd("--config-file", str(tmp_path / "none.json"), "extra", "args")
    assert r.returncode != 0 and "usage:" in r.stderr


def test_socket_mode_pidfile_and_tcp_requires_tls(fresh_daemon):
    d = fresh_daemon()
    mode = stat.S_IMODE(os.stat(d.socket).st_mode)
    assert mode == 0o660
    pid = int((d.base / "pydockerd.pid").read_text())
    assert pid == d.proc.pid
    # a second daemon on the same pidfile refuses to start
    r = pydockerd(*d.argv()[3:], timeout=20)
    assert r.returncode != 0 and "pid file found" in r.stderr
    port = _free_port()
    r = pydockerd("-H", f"tcp://127.0.0.1:{port}", "--data-root", str(d.base / "d2"),
                  "--exec-root", str(d.base / "e2"), "--pidfile", str(d.base / "p2"),
                  "-b", "none", "--config-file", str(d.base / "none.json"), "--iptables=false")
    assert r.returncode != 0 and "without TLS" in r.stderr


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _make_certs(d: Path) -> None:
    def run(*a: str) -> None:
        subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out",
        "ca.pem", "-days", "2", "-subj", "/CN=test-ca")
    for name, cn in (("server", "localhost"), ("client", "client")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem", "-out",
            f"{name}.csr", "-subj", f"/CN={cn}")
        ext = d / f"{name}.ext"
        ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n" if name == "server"
                       else "extendedKeyUsage=clientAuth\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
            "-CAcreateserial", "-out", f"{name}-cert.pem", "-days", "2", "-extfile", str(ext))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_tlsverify_rejects_clients_without_cert(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    _make_certs(certs)
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pydockerd", "-H", f"tcp://127.0.0.1:{port}",
         "--tlsverify", "--tlscacert", str(certs / "ca.pem"),
         "--tlscert", str(certs / "server-cert.pem"), "--tlskey", str(certs / "server-key.pem"),
         "--data-root", str(tmp_path / "data"), "--exec-root", str(tmp_path / "exec"),
         "--pidfile", str(tmp_path / "pid"), "-b", "none", "--iptables=false",
         "--config-file", str(tmp_path / "none.json")],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "log", "w"))
    try:
        cli_env = dict(os.environ, DOCKER_HOST=f"tcp://127.0.0.1:{port}",
                       DOCKER_CONFIG=str(tmp_path / "cli"))
        ok = None
        for _ in range(100):
            ok = subprocess.run(["docker", "--tlsverify", "--tlscacert", str(certs / "ca.pem"),
                                 "--tlscert", str(certs / "client-cert.pem"), "--tlskey",
                                 str(certs / "client-key.pem"), "version", "--format",
                                 "{{.Server.APIVersion}}"], env=cli_env, capture_output=True,
                                text=True)
            if ok.returncode == 0:
                break
            time.sleep(0.1)
        assert ok is not None and ok.returncode == 0 and ok.stdout.strip() == "1.50", \
            (tmp_path / "log").read_text()
        bad = subprocess.run(["docker", "--tls", "--tlscacert", str(certs / "ca.pem"),
                              "version"], env=cli_env, capture_output=True, text=True)
        assert bad.returncode != 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_sigusr1_dumps_stacks_and_sighup_reloads(fresh_daemon):
    d = fresh_daemon()
    d.proc.send_signal(signal.SIGUSR1)
    (d.base / "daemon.json").write_text(json.dumps({"live-restore": True}))
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 5
    while time.time() < deadline:
        log = d.log_path.read_text()
        if "task stack dump" in log and "reload" in log.lower():
            break
        time.sleep(0.1)
    log = d.log_path.read_text()
    assert "BEGIN task stack dump" in log
    assert "SIGHUP: reloaded live_restore=True" in log
    assert d.out("info", "--format", "{{.LiveRestoreEnabled}}").strip() == "true"


# sd_notify and fd:// socket activation: tests/integration/test_systemd_units.py


def test_vfs_storage_driver(fresh_daemon):
    d = fresh_daemon("--storage-driver", "vfs")
    assert d.out("info", "--format", "{{.Driver}}").strip() == "vfs"
    assert d.out("run", "--rm", "busybox", "sh", "-c", "echo hi > /x; cat /x") == "hi\n"


def test_sigterm_ends_streaming_clients_and_exits_cleanly(fresh_daemon):
    """A graceful shutdown closes every client connection (events, follow-logs, a
    hijacked attach) and exits 0 within seconds; the clients end instead of hanging."""
    d = fresh_daemon()
    cid = d.out("run", "-d", "-i", "busybox", "sh", "-c",
                'trap "exit 0" TERM; while true; do echo tick; sleep 0.2; done').strip()
    env = dict(os.environ, DOCKER_HOST=d.host, DOCKER_CONFIG=str(d.base / "cli"))
    env.pop("DOCKER_CONTEXT", None)
    clients: dict[str, subprocess.Popen] = {}
    outputs: dict[str, Path] = {}
    try:
        for name, args in (("events", ["events"]), ("logs", ["logs", "-f", cid]),
                           ("attach", ["attach", "--sig-proxy=false", cid])):
            outputs[name] = d.base / f"{name}.out"
            with open(outputs[name], "wb") as out:
                clients[name] = subprocess.Popen(
                    [shutil.which("docker") or "/usr/local/bin/docker", *args], env=env,
                    stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)

        probes = iter(range(1000))

        def events_stream() -> bool:      # a new event, until the subscriber has seen one
            d.cli("volume", "create", f"shutdown-probe-{next(probes)}")
            return b"shutdown-probe" in outputs["events"].read_bytes()
        wait_until(events_stream, interval=0.3, what="docker events to stream")
        for name in ("logs", "attach"):
            start = len(outputs[name].read_bytes())
            wait_until(lambda: outputs[name].read_bytes().count(b"tick", start) >= 2,
                       what=f"docker {name} to stream")
        assert all(p.poll() is None for p in clients.values())
        began = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        rc = d.proc.wait(timeout=15)
        took = time.monotonic() - began
        d.proc = None
        assert rc == 0, d.log_tail()
        assert took < 8, f"shutdown took {took:.1f} s\n{d.log_tail()}"
        for name, p in clients.items():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"docker {name} still running after the daemon exited")
        log = d.log_path.read_text(errors="replace")
        assert "Task was destroyed but it is pending" not in log
        assert "Traceback" not in log.split("shutting down", 1)[-1], d.log_tail(80)
    finally:
        for p in clients.values():
            if p.poll() is None:
                p.kill()
                p.wait()
