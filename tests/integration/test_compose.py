"""docker-compose (Debian's 1.29) against pydockerd: network + DNS by service name,
a named volume shared by two services, attached logs, exit codes, down -v."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

COMPOSE = shutil.which("docker-compose")

COMPOSE_FILE = """\
version: "3.8"
services:
  web:
    image: busybox
    command: sh -c "mkdir -p /www && echo hello-compose > /www/index.html && exec httpd -f -p 80 -h /www"
    volumes:
      - data:/data
  client:
    image: busybox
    depends_on: [web]
    command: sh -c "until wget -q -O- http://web/; do sleep 0.1; done; echo done > /data/flag && exit 3"
    volumes:
      - data:/data
volumes:
  data: {}
"""


@pytest.mark.skipif(COMPOSE is None, reason="docker-compose is not installed")
def test_compose_up_down(daemon, tmp_path):
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE)
    project = f"pdc{os.getpid()}"
    env = dict(os.environ, DOCKER_HOST=daemon.host, DOCKER_CONFIG=str(daemon.base / "cli"))

    def compose(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([COMPOSE, "-p", project, *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
    try:
        r = compose("up", "--abort-on-container-exit", "--exit-code-from", "client")
        assert r.returncode == 3, r.stdout + r.stderr
        assert "hello-compose" in r.stdout
        vol = f"{project}_data"
        assert daemon.out("run", "--rm", "-v", f"{vol}:/data", "busybox",
                          "cat", "/data/flag") == "done\n"
        assert f"{project}_default" in daemon.out("network", "ls", "--format", "{{.Name}}")
    finally:
        r = compose("down", "-v")
    assert r.returncode == 0, r.stderr
    assert f"{project}_default" not in daemon.out("network", "ls", "--format", "{{.Name}}")
    assert f"{project}_data" not in daemon.out("volume", "ls", "--format", "{{.Name}}")
    assert not [n for n in daemon.out("ps", "-a", "--format", "{{.Names}}").split()
                if n.startswith(project)]
