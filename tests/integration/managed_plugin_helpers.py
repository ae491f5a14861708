"""A managed volume plugin for the tests, built from the project's offline busybox.

The plugin is a Python script (the volume protocol over the socket the engine gives
it); a busybox rootfs cannot run Python, so the plugin's config bind-mounts the host's
/usr read-only at /usr (a `mount` privilege, as real plugins ask for host paths) and
the rootfs links /lib and /lib64 into it, so /usr/bin/python3 and its loader resolve.
The plugin keeps each volume as a directory under its PropagatedMount (/data), writes
the GREETING setting and its arguments into a new volume's `greeting` file (so a test
sees Env and Args settings reach it), and logs every call to /data/calls.log."""
from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

from pydockerd.testing.images import busybox_layer

SOCKET = "tvp.sock"

PLUGIN_PY = r'''
import json, os, shutil, socket, socketserver, sys
from http.server import BaseHTTPRequestHandler

SOCK = "/run/docker/plugins/%s"
ROOT = "/data"

class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("engine", 0)

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        body = json.loads(raw) if raw.strip() else {}
        method = self.path.lstrip("/")
        with open(os.path.join(ROOT, "calls.log"), "a") as f:
            f.write(method + " " + json.dumps(body) + "\n")
        name = body.get("Name", "")
        path = os.path.join(ROOT, name)
        out = {"Err": ""}
        if method == "Plugin.Activate":
            out = {"Implements": ["VolumeDriver"]}
        elif method == "VolumeDriver.Create":
            os.makedirs(path, exist_ok=True)
            with open(os.path.join(path, "greeting"), "w") as f:
                f.write(" ".join([os.environ.get("GREETING", "")] + sys.argv[1:]))
        elif method == "VolumeDriver.Remove":
            shutil.rmtree(path, ignore_errors=True)
        elif method in ("VolumeDriver.Mount", "VolumeDriver.Path"):
            out["Mountpoint"] = path
        elif method == "VolumeDriver.Get":
            if os.path.isdir(path):
                out["Volume"] = {"Name": name, "Mountpoint": path}
            else:
                out["Err"] = "no such volume"
        elif method == "VolumeDriver.List":
            out["Volumes"] = [{"Name": v, "Mountpoint": os.path.join(ROOT, v)}
                              for v in sorted(os.listdir(ROOT))
                              if os.path.isdir(os.path.join(ROOT, v))]
        elif method == "VolumeDriver.Capabilities":
            out = {"Capabilities": {"Scope": "local"}}
        data = json.dumps(out).encode()
        self.send_response(200 if not out.get("Err") else 500)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1.2+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

if os.path.exists(SOCK):
    os.unlink(SOCK)
Server(SOCK, H).serve_forever()
''' % SOCKET


def plugin_config(**extra: object) -> dict:
    cfg = {
        "Description": "pydockerd test volume plugin",
        "Documentation": "https://example.invalid/tvp",
        "Entrypoint": ["/usr/bin/python3", "/plugin.py"],
        "Interface": {"Types": ["docker.volumedriver/1.0"], "Socket": SOCKET},
        "Network": {"Type": "none"},
        "PropagatedMount": "/data",
        "Mounts": [{"Name": "usr", "Description": "the host's Python",
                    "Source": "/usr", "Destination": "/usr", "Type": "bind",
                    "Options": ["rbind", "ro"]}],
        "Env": [{"Name": "GREETING", "Description": "written into new volumes",
                 "Settable": ["value"], "Value": "hello"}],
        "Args": {"Name": "args", "Description": "more words", "Settable": ["value"],
                 "Value": []},
        "Linux": {"Capabilities": ["CAP_CHOWN"]},
    }
    cfg.update(extra)
    return cfg


def write_plugin_dir(d: Path, config: dict | None = None) -> Path:
    """`docker plugin create`'s directory: config.json and rootfs/."""
    rootfs = d / "rootfs"
    rootfs.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(busybox_layer())) as t:
        t.extractall(rootfs)
    for link, target in (("lib", "usr/lib"), ("lib64", "usr/lib64")):
        if not os.path.lexists(rootfs / link):
            os.symlink(target, rootfs / link)
    (rootfs / "plugin.py").write_text(PLUGIN_PY)
    (rootfs / "data").mkdir(exist_ok=True)
    (d / "config.json").write_text(json.dumps(config or plugin_config()))
    return d
