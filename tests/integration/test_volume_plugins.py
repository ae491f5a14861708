"""Legacy volume plugins through the docker CLI and the SDK: discovery (sockets and spec
files), the Plugin.Activate handshake and its retries, the VolumeDriver API, volumes of a
plugin in containers (-v with --volume-driver, --mount volume-driver=), mount IDs per
container, and a plugin that dies and comes back. The plugins are tests/integration/
plugin_helpers.py's, in a private plugin directory (PYDOCKERD_PLUGIN_SOCKET_DIR and
PYDOCKERD_PLUGIN_SPEC_DIRS), never the host's."""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import cleanup_daemon, make_daemon, start_with_plugin_dirs
from plugin_helpers import VolumePlugin, free_port

MIME = "application/vnd.docker.plugins.v1.2+json"
RETRY_BUDGET = "4"          # seconds: retries at about 1 s and 3 s, then the error


def _start(d, sockets: Path, specs: Path) -> None:
    start_with_plugin_dirs(d, sockets, specs, RETRY_BUDGET)


@pytest.fixture(scope="module")
def env(images_dir):
    """A daemon whose plugin directories are private temp dirs."""
    base = Path(tempfile.mkdtemp(prefix="pdt-plg-", dir="/tmp"))
    sockets, specs = base / "run-plugins", base / "etc-plugins"
    sockets.mkdir()
    specs.mkdir()
    d = make_daemon(base / "daemon")
    _start(d, sockets, specs)
    plugins: list[VolumePlugin] = []
    try:
        d.cli("load", "-i", str(images_dir / "busybox.tar"))
        yield d, sockets, specs, base, plugins
    finally:
        cleanup_daemon(d)
        for p in plugins:
            p.stop()
        shutil.rmtree(base, ignore_errors=True)


def _plugin(env, name: str, **kw) -> VolumePlugin:
    d, sockets, _specs, base, plugins = env
    kw.setdefault("socket_path", str(sockets / f"{name}.sock"))
    p = VolumePlugin(str(base / f"backing-{name}"), **kw)
    plugins.append(p)
    return p


def _vol(d, name: str) -> dict:
    return json.loads(d.out("volume", "inspect", name))[0]


def test_create_inspect_ls_rm_with_a_plugin(env):
    d = env[0]
    p = _plugin(env, "pvtone").start()
    assert d.out("volume", "create", "-d", "pvtone", "--opt", "size=1g", "--label", "a=b",
                 "pv-one").strip() == "pv-one"
    act = p.calls_of("Plugin.Activate")
    assert len(act) == 1 and act[0].body is None
    assert act[0].headers.get("Accept") == MIME
    create = p.calls_of("VolumeDriver.Create", "pv-one")
    assert create[0].body == {"Name": "pv-one", "Opts": {"size": "1g"}}
    v = _vol(d, "pv-one")
    assert v["Driver"] == "pvtone" and v["Mountpoint"] == p.path_of("pv-one")
    assert v["Scope"] == "local" and v["Status"] == {"mounts": 0}
    assert v["Labels"] == {"a": "b"} and v["Options"] == {"size": "1g"}
    assert v["CreatedAt"] == "0001-01-01T00:00:00Z"          # the plugin gives none
    # a volume the plugin has without docker having made it is listed and inspectable
    p.handle("VolumeDriver.Create", {"Name": "pv-outside"})
    ls = d.out("volume", "ls", "--format", "{{.Driver}} {{.Name}}").splitlines()
    assert "pvtone pv-one" in ls and "pvtone pv-outside" in ls
    assert d.out("volume", "ls", "-q", "--filter", "driver=pvtone").split() == \
        ["pv-one", "pv-outside"]
    assert _vol(d, "pv-outside")["Driver"] == "pvtone"
    # creating the same name again returns it; another driver for it is a conflict
    d.cli("volume", "create", "-d", "pvtone", "pv-one")
    r = d.cli("volume", "create", "pv-one", check=False)
    assert r.returncode != 0 and "volume name must be unique" in r.stderr_text
    # the plugin's refusal reaches the user
    r = d.cli("volume", "create", "-d", "pvtone", "--opt", "fail=1", "pv-bad", check=False)
    assert r.returncode != 0 and \
        "create pv-bad: VolumeDriver.Create: refusing to create pv-bad" in r.stderr_text
    d.cli("volume", "rm", "pv-one")
    assert p.calls_of("VolumeDriver.Remove", "pv-one")
    assert "pv-one" not in p.volumes
    r = d.cli("volume", "inspect", "pv-one", check=False)
    assert r.returncode != 0 and "no such volume" in r.stderr_text
    assert len(p.calls_of("Plugin.Activate")) == 1      # activated once, kept


def test_sdk_create_and_list(env):
    import docker
    d = env[0]
    p = _plugin(env, "pvtsdk").start()
    client = docker.DockerClient(base_url=d.host, timeout=60)
    try:
        vol = client.volumes.create("pv-sdk", driver="pvtsdk", driver_opts={"k": "v"})
        assert vol.attrs["Driver"] == "pvtsdk"
        assert vol.attrs["Mountpoint"] == p.path_of("pv-sdk")
        listed = client.api.volumes(filters={"driver": "pvtsdk"})
        assert [v["Name"] for v in listed["Volumes"]] == ["pv-sdk"]
        assert listed["Warnings"] is None
        vol.remove()
        assert "pv-sdk" not in p.volumes
    finally:
        client.close()


def test_containers_use_plugin_volumes(env):
    d = env[0]
    p = _plugin(env, "pvtrun").start()
    d.cli("run", "--rm", "--volume-driver", "pvtrun", "-v", "pv-run:/data", "busybox",
          "sh", "-c", "echo hello > /data/f")
    assert open(os.path.join(p.path_of("pv-run"), "f")).read() == "hello\n"
    mounts = p.calls_of("VolumeDriver.Mount", "pv-run")
    unmounts = p.calls_of("VolumeDriver.Unmount", "pv-run")
    assert len(mounts) == 1 and re.fullmatch(r"[0-9a-f]{64}", mounts[0].body["ID"])
    assert [u.body["ID"] for u in unmounts] == [mounts[0].body["ID"]]
    assert _vol(d, "pv-run")["Driver"] == "pvtrun"
    # --mount with volume-driver and volume-opt
    d.cli("run", "--rm", "--mount",
          "type=volume,source=pv-mnt,target=/m,volume-driver=pvtrun,volume-opt=color=red",
          "busybox", "sh", "-c", "echo x > /m/g")
    assert p.calls_of("VolumeDriver.Create", "pv-mnt")[0].body["Opts"] == {"color": "red"}
    assert os.path.exists(os.path.join(p.path_of("pv-mnt"), "g"))
    # without --volume-driver, an existing plugin volume is used as it is
    out = d.out("run", "--rm", "-v", "pv-run:/data", "busybox", "cat", "/data/f")
    assert out == "hello\n"
    # an anonymous volume (-v /path) with --volume-driver goes to the plugin
    cid = d.out("create", "--volume-driver", "pvtrun", "-v", "/anon", "busybox").strip()
    try:
        anon = [m for m in d.inspect(cid)["Mounts"] if m["Destination"] == "/anon"][0]
        assert anon["Driver"] == "pvtrun" and anon["Name"] in p.volumes
    finally:
        d.cli("rm", "-v", cid)
    assert anon["Name"] not in p.volumes
    d.cli("volume", "rm", "pv-run", "pv-mnt")


def test_mount_ids_count_containers(env):
    d = env[0]
    p = _plugin(env, "pvtref").start()
    d.cli("volume", "create", "-d", "pvtref", "pv-ref")
    a = d.out("run", "-d", "-v", "pv-ref:/v", "busybox", "sleep", "300").strip()
    b = d.out("run", "-d", "-v", "pv-ref:/w", "busybox", "sleep", "300").strip()
    try:
        ids = [c.body["ID"] for c in p.calls_of("VolumeDriver.Mount", "pv-ref")]
        assert len(ids) == 2 and ids[0] != ids[1]
        assert p.volumes["pv-ref"].mounts == set(ids)
        assert _vol(d, "pv-ref")["Status"] == {"mounts": 2}
        d.cli("stop", "-t", "0", a)
        assert [c.body["ID"] for c in p.calls_of("VolumeDriver.Unmount", "pv-ref")] == \
            [ids[0]]
        r = d.cli("volume", "rm", "pv-ref", check=False)
        assert r.returncode != 0 and "volume is in use" in r.stderr_text
        d.cli("start", a)                        # the same container mounts again
        assert [c.body["ID"] for c in p.calls_of("VolumeDriver.Mount", "pv-ref")] == \
            [ids[0], ids[1], ids[0]]
    finally:
        d.cli("rm", "-f", a, b, check=False)
    assert p.volumes["pv-ref"].mounts == set()
    d.cli("volume", "rm", "pv-ref")
    assert "pv-ref" not in p.volumes


def test_plugin_dies_and_comes_back(env):
    d = env[0]
    p = _plugin(env, "pvtdie").start()
    d.cli("volume", "create", "-d", "pvtdie", "pv-die")
    d.cli("volume", "create", "pv-local-die")
    p.stop()
    r = d.cli("run", "--rm", "-v", "pv-die:/x", "busybox", "true", check=False)
    assert r.returncode != 0
    assert "pvtdie.sock" in r.stderr_text and "connection refused" in r.stderr_text, \
        r.stderr_text
    # the daemon keeps working: ls warns (and lists what it knows of the plugin's volumes)
    assert {"pv-local-die", "pv-die"} <= set(d.out("volume", "ls", "-q").split())
    import docker
    client = docker.DockerClient(base_url=d.host, timeout=60)
    try:
        warnings = client.api.volumes()["Warnings"]
        assert warnings and any("list pvtdie" in w and "pvtdie.sock" in w
                                for w in warnings), warnings
    finally:
        client.close()
    r = d.cli("volume", "inspect", "pv-die", check=False)
    assert r.returncode != 0 and 'get pv-die: error while checking if volume "pv-die" ' \
        'exists in driver "pvtdie": Post ' in r.stderr_text and "pvtdie.sock" in r.stderr_text
    r = d.cli("volume", "rm", "-f", "pv-die", check=False)   # kept: the plugin may return
    assert r.returncode != 0 and "pvtdie.sock" in r.stderr_text
    assert d.out("run", "--rm", "busybox", "echo", "fine").strip() == "fine"
    # back again: the same socket, no new activation needed
    p.start()
    d.cli("run", "--rm", "-v", "pv-die:/x", "busybox", "sh", "-c", "echo back > /x/b")
    assert os.path.exists(os.path.join(p.path_of("pv-die"), "b"))
    assert "pv-die" in d.out("volume", "ls", "-q").split()
    d.cli("volume", "rm", "pv-die", "pv-local-die")


def test_activation_retries_while_the_plugin_starts(env):
    d = env[0]
    p = _plugin(env, "pvtlate")
    p.bind()                                  # the socket exists but refuses connections
    timer = threading.Timer(1.5, p.listen)
    timer.start()
    try:
        began = time.monotonic()
        d.cli("volume", "create", "-d", "pvtlate", "pv-late")
        assert time.monotonic() - began >= 1.0
        assert len(p.calls_of("Plugin.Activate")) == 1
        assert "pv-late" in p.volumes
    finally:
        timer.cancel()
    d.cli("volume", "rm", "pv-late")
    # a plugin whose socket appears late is found (discovery is retried too) ...
    late = _plugin(env, "pvtlater")
    timer = threading.Timer(1.5, late.start)
    timer.start()
    try:
        d.cli("volume", "create", "-d", "pvtlater", "pv-later")
        assert "pv-later" in late.volumes
    finally:
        timer.cancel()
    d.cli("volume", "rm", "pv-later")
    # ... and one that never appears is a 404 when the retries are spent
    began = time.monotonic()
    r = d.cli("volume", "create", "-d", "pvtnone", "pv-none", check=False)
    assert r.returncode != 0 and \
        'error looking up volume plugin pvtnone: plugin "pvtnone" not found' in r.stderr_text
    assert 2.0 <= time.monotonic() - began < 10


def test_spec_files_over_tcp(env):
    d, _sockets, specs, _base, _plugins = env
    port = free_port()
    p = _plugin(env, "pvtspec", socket_path=None, tcp=("127.0.0.1", port)).start()
    (specs / "pvtspec.spec").write_text(f"tcp://127.0.0.1:{port}\n")
    d.cli("volume", "create", "-d", "pvtspec", "pv-spec")
    assert _vol(d, "pv-spec")["Mountpoint"] == p.path_of("pv-spec")
    d.cli("run", "--rm", "-v", "pv-spec:/s", "busybox", "touch", "/s/t")
    assert os.path.exists(os.path.join(p.path_of("pv-spec"), "t"))
    d.cli("volume", "rm", "pv-spec")
    # a .json spec under <dir>/<name>/<name>.json
    port2 = free_port()
    p2 = _plugin(env, "pvtjson", socket_path=None, tcp=("127.0.0.1", port2)).start()
    (specs / "pvtjson").mkdir()
    (specs / "pvtjson" / "pvtjson.json").write_text(json.dumps(
        {"Name": "pvtjson", "Addr": f"tcp://127.0.0.1:{port2}"}))
    d.cli("volume", "create", "-d", "pvtjson", "pv-json")
    assert "pv-json" in p2.volumes
    d.cli("volume", "rm", "pv-json")
    (specs / "pvtbad.spec").write_text("no-scheme-here\n")
    r = d.cli("volume", "create", "-d", "pvtbad", "pv-x", check=False)
    assert r.returncode != 0 and "Unknown protocol" in r.stderr_text


def test_capabilities_scope_and_implements(env):
    d = env[0]
    _plugin(env, "pvtglobal", scope="Global").start()
    d.cli("volume", "create", "-d", "pvtglobal", "pv-global")
    assert _vol(d, "pv-global")["Scope"] == "global"
    assert "global pv-global" in d.out("volume", "ls", "--format",
                                       "{{.Scope}} {{.Name}}").splitlines()
    d.cli("volume", "rm", "pv-global")
    _plugin(env, "pvtnoscope", scope=None).start()
    d.cli("volume", "create", "-d", "pvtnoscope", "pv-noscope")
    assert _vol(d, "pv-noscope")["Scope"] == "local"
    d.cli("volume", "rm", "pv-noscope")
    _plugin(env, "pvtnet", implements=("NetworkDriver",)).start()
    r = d.cli("volume", "create", "-d", "pvtnet", "pv-net", check=False)
    assert r.returncode != 0 and "does not implement the requested driver" in r.stderr_text


def test_live_restore_keeps_the_mount_id(images_dir, tmp_path):
    """A container left running across a daemon restart (--live-restore) still holds its
    plugin volume: no second Mount at start-up, and its stop unmounts the original ID."""
    sockets, specs = tmp_path / "run-plugins", tmp_path / "etc-plugins"
    sockets.mkdir()
    specs.mkdir()
    base = Path(tempfile.mkdtemp(prefix="pdt-plg-", dir="/tmp"))
    d = make_daemon(base, ["--live-restore"])
    p = VolumePlugin(str(tmp_path / "backing"), socket_path=str(sockets / "pvtlive.sock"))
    try:
        p.start()
        _start(d, sockets, specs)
        d.cli("load", "-i", str(images_dir / "busybox.tar"))
        cid = d.out("run", "-d", "--volume-driver", "pvtlive", "-v", "pv-live:/v",
                    "busybox", "sleep", "300").strip()
        [mount] = p.calls_of("VolumeDriver.Mount", "pv-live")
        d.stop()
        _start(d, sockets, specs)
        assert d.inspect(cid)["State"]["Running"]
        d.cli("stop", "-t", "0", cid)
        assert len(p.calls_of("VolumeDriver.Mount", "pv-live")) == 1
        assert [u.body["ID"] for u in p.calls_of("VolumeDriver.Unmount", "pv-live")] == \
            [mount.body["ID"]]
        assert p.volumes["pv-live"].mounts == set()
    finally:
        cleanup_daemon(d)
        p.stop()
        shutil.rmtree(base, ignore_errors=True)
