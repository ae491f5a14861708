"""Managed plugins through the docker CLI and the SDK: `docker plugin create` from a
directory, ls/inspect/set/enable/disable/rm, the plugin running under runc with its
socket in <plugin dir>/<id>/, its volumes (`docker volume create -d`, a container using
one, through the PropagatedMount), push to and install from Debian's docker-registry on
127.0.0.1, upgrade, and an enabled plugin coming back after a daemon restart. The
plugin is managed_plugin_helpers.py's; the plugin socket directory is private
(PYDOCKERD_PLUGIN_SOCKET_DIR), never the host's /run/docker/plugins."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import docker
import docker.errors
import pytest

from conftest import cleanup_daemon, make_daemon, start_with_plugin_dirs
from managed_plugin_helpers import SOCKET, plugin_config, write_plugin_dir
from polling import wait_until
from pydockerd.testing.archive import LayerTar, sha256_digest
from registry_helpers import _req, put_manifest, start_registry, upload_blob


def _start(d, sockets: Path) -> None:
    start_with_plugin_dirs(d, sockets, sockets / "specs")


@pytest.fixture(scope="module")
def env(images_dir):
    base = Path(tempfile.mkdtemp(prefix="pdt-mplg-", dir="/tmp"))
    # short: <sockets>/<64-hex id>/tvp.sock must fit a unix socket address (108 bytes)
    sockets = Path(tempfile.mkdtemp(prefix="pm", dir="/tmp"))
    (sockets / "specs").mkdir()
    d = make_daemon(base / "daemon")
    reg = None
    try:
        _start(d, sockets)
        d.cli("load", "-i", str(images_dir / "busybox.tar"))
        reg = start_registry(base, "registry")
        yield d, sockets, base, reg
    finally:
        if d.proc is not None:
            for name in d.out("plugin", "ls", "-q", check=False).split():
                d.cli("plugin", "rm", "-f", name, check=False)
        cleanup_daemon(d)
        if reg is not None:
            reg.stop()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(sockets, ignore_errors=True)


def _create(env, name: str, config: dict | None = None) -> Path:
    d, _s, base, _r = env
    ctx = write_plugin_dir(Path(tempfile.mkdtemp(dir=base)), config)
    d.cli("plugin", "create", name, str(ctx))
    return ctx


def _inspect(d, name: str) -> dict:
    return json.loads(d.out("plugin", "inspect", name))[0]


def _plugin_pid(d, pid: str) -> int | None:
    """The plugin's process, from the plugins' own runc root (None: not running)."""
    r = subprocess.run(["runc", "--root", os.path.join(d.exec_root, "plugins", "runc"),
                        "state", pid], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    st = json.loads(r.stdout)
    return st["pid"] if st.get("status") == "running" else None


def _rm(d, *names: str) -> None:
    for n in names:
        d.cli("plugin", "rm", "-f", n, check=False)


def test_create_set_enable_use_and_remove(env):
    d, sockets, _base, _reg = env
    sdk = docker.DockerClient(base_url=d.host, timeout=60)
    try:
        _create(env, "tvp")
        assert d.out("plugin", "ls", "--format", "{{.Name}} {{.Enabled}}").split() == \
            ["tvp:latest", "false"]
        p = _inspect(d, "tvp")
        assert p["Config"]["Interface"] == {"Socket": SOCKET,
                                            "Types": ["docker.volumedriver/1.0"]}
        assert p["Settings"]["Env"] == ["GREETING=hello"] and p["PluginReference"] == \
            "tvp:latest"
        assert _inspect(d, p["Id"][:12])["Name"] == "tvp:latest"      # by ID prefix
        d.cli("plugin", "set", "tvp", "GREETING=bonjour", "args=le monde")
        r = d.cli("plugin", "set", "tvp", "NOPE=1", check=False)
        assert r.returncode != 0 and 'setting "NOPE" not found' in r.stderr_text
        r = d.cli("plugin", "set", "tvp", "usr.source=/opt", check=False)
        assert r.returncode != 0 and '"usr.source" is not settable' in r.stderr_text
        assert _inspect(d, "tvp")["Settings"]["Args"] == ["le", "monde"]

        d.cli("plugin", "enable", "tvp")
        assert (sockets / p["Id"] / SOCKET).is_socket()
        r = d.cli("plugin", "enable", "tvp", check=False)
        assert r.returncode != 0 and "plugin already enabled: plugin tvp:latest is enabled" \
            in r.stderr_text
        r = d.cli("plugin", "set", "tvp", "GREETING=x", check=False)
        assert r.returncode != 0 and "cannot set on an active plugin" in r.stderr_text
        assert d.out("plugin", "ls", "--filter", "enabled=true", "-q").split() == \
            [p["Id"][:12]]
        assert d.out("plugin", "ls", "--filter", "capability=volumedriver",
                     "-q").split() == [p["Id"][:12]]

        d.cli("volume", "create", "-d", "tvp", "mvol")
        vol = json.loads(d.out("volume", "inspect", "mvol"))[0]
        assert vol["Driver"] == "tvp:latest"
        assert vol["Mountpoint"] == os.path.join(d.data_root, "plugins", p["Id"],
                                                 "propagated-mount", "mvol")
        assert d.out("run", "--rm", "-v", "mvol:/v", "busybox", "cat",
                     "/v/greeting") == "bonjour le monde"
        assert "mvol" in d.out("volume", "ls", "-q").split()

        # a plugin that dies is started again (dockerd restarts its plugins)
        first = _plugin_pid(d, p["Id"])
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: _plugin_pid(d, p["Id"]) not in (None, first), timeout=20,
                   what="the plugin started again")
        assert d.out("run", "--rm", "-v", "mvol:/v", "busybox", "cat",
                     "/v/greeting") == "bonjour le monde"

        for verb in ("rm", "disable"):          # its volume holds it, as dockerd's refcount
            r = d.cli("plugin", verb, "tvp", check=False)
            assert r.returncode != 0 and "plugin tvp:latest is in use" in r.stderr_text
        d.cli("volume", "rm", "mvol")
        r = d.cli("plugin", "rm", "tvp", check=False)
        assert r.returncode != 0 and "plugin tvp:latest is enabled" in r.stderr_text
        d.cli("plugin", "disable", "tvp")
        assert not (sockets / p["Id"]).exists()
        with pytest.raises(docker.errors.APIError) as e:        # as dockerd 20.10
            sdk.volumes.create("mvol2", driver="tvp")
        assert e.value.status_code == 409 and e.value.explanation == \
            "create mvol2: error looking up volume plugin tvp: plugin tvp found but disabled"
        r = d.cli("plugin", "disable", "tvp", check=False)
        assert r.returncode != 0 and "plugin is already disabled: plugin tvp:latest found " \
            "but disabled" in r.stderr_text
        d.cli("plugin", "rm", "tvp")
        assert not os.path.exists(os.path.join(d.data_root, "plugins", p["Id"]))
        r = d.cli("plugin", "inspect", "tvp", check=False)
        assert r.returncode != 0 and 'plugin "tvp" not found' in r.stderr_text
        assert p["Config"]["DockerVersion"] == sdk.version()["Version"]
    finally:
        sdk.close()
        d.cli("volume", "rm", "-f", "mvol", check=False)
        _rm(d, "tvp")


def test_errors_as_dockerd(env):
    d, _s, base, _r = env
    sdk = docker.DockerClient(base_url=d.host, timeout=60)
    try:
        with pytest.raises(docker.errors.NotFound, match='plugin "nope" not found'):
            sdk.plugins.get("nope")
        for args in (("plugin", "inspect", "nope"), ("plugin", "rm", "nope"),
                     ("plugin", "disable", "nope"), ("plugin", "enable", "nope")):
            r = d.cli(*args, check=False)
            assert r.returncode != 0 and 'plugin "nope" not found' in r.stderr_text, args
        r = d.cli("plugin", "ls", "--filter", "bogus=1", check=False)
        assert r.returncode != 0 and "Invalid filter 'bogus'" in r.stderr_text
        # a config that is not a plugin's: 400, nothing installed
        bad = plugin_config()
        del bad["Interface"]["Socket"]
        ctx = write_plugin_dir(Path(tempfile.mkdtemp(dir=base)), bad)
        r = d.cli("plugin", "create", "badp", str(ctx), check=False)
        assert r.returncode != 0 and "Interface.Socket" in r.stderr_text
        with pytest.raises(docker.errors.APIError) as e:
            sdk.api.create_plugin("badp2", str(ctx))
        assert e.value.status_code == 400
        (ctx / "config.json").write_text("{not json")       # the CLI refuses it itself
        with pytest.raises(docker.errors.APIError, match="failed to parse config") as e:
            sdk.api.create_plugin("badp2", str(ctx))
        assert e.value.status_code == 400
        assert sdk.plugins.list() == []
        # a plugin that exits at once: enable fails with its output, stays disabled
        _create(env, "crashp", plugin_config(Entrypoint=["/bin/sh", "-c", "echo boom; exit 3"]))
        r = d.cli("plugin", "enable", "crashp", check=False)
        assert r.returncode != 0 and "exited before it created its socket" in r.stderr_text
        assert "boom" in r.stderr_text
        assert _inspect(d, "crashp")["Enabled"] is False
        dup = _create(env, "dupp")
        r = d.cli("plugin", "create", "dupp", str(dup), check=False)
        assert r.returncode != 0 and "plugin dupp:latest already exists" in r.stderr_text
    finally:
        sdk.close()
        _rm(d, "crashp", "dupp")


def test_push_install_upgrade_and_restart(env):
    d, sockets, _base, reg = env
    ref = f"{reg.host}/tests/tvp:1.0"
    try:
        _create(env, ref)
        out = d.out("plugin", "push", ref)
        assert "1.0: digest: sha256:" in out
        d.cli("plugin", "rm", ref)
        # what the CLI asks before installing
        sdk = docker.DockerClient(base_url=d.host, timeout=60)
        try:
            privs = sdk.api.plugin_privileges(ref)
        finally:
            sdk.close()
        assert {"Name": "mount", "Description": "host path to mount",
                "Value": ["/usr"]} in privs
        assert {"Name": "capabilities", "Description":
                "list of additional capabilities required", "Value": ["CAP_CHOWN"]} in privs
        d.cli("plugin", "install", "--grant-all-permissions", "--alias", "itvp", ref,
              "GREETING=hi")
        p = _inspect(d, "itvp")
        assert p["Enabled"] is True and p["PluginReference"] == ref.replace(
            reg.host, reg.host)
        assert p["Settings"]["Env"] == ["GREETING=hi"]
        assert p["Config"]["rootfs"]["type"] == "layers"
        d.cli("volume", "create", "-d", "itvp", "ivol")
        assert d.out("run", "--rm", "-v", "ivol:/v", "busybox", "cat", "/v/greeting") == "hi"

        # enabled plugins come back after a daemon restart, with their volumes
        d.stop()
        _start(d, sockets)
        assert _inspect(d, "itvp")["Enabled"] is True
        assert d.out("run", "--rm", "-v", "ivol:/v", "busybox", "cat", "/v/greeting") == "hi"

        # upgrade: disabled first, as dockerd
        r = d.cli("plugin", "upgrade", "--grant-all-permissions", "itvp", ref, check=False)
        assert r.returncode != 0 and "plugin must be disabled before upgrading" in \
            r.stderr_text
        d.cli("volume", "rm", "ivol")
        d.cli("plugin", "disable", "itvp")
        d.cli("plugin", "upgrade", "--grant-all-permissions", "itvp", ref)
        assert _inspect(d, "itvp")["Settings"]["Env"] == ["GREETING=hi"]
        # a repository that holds no plugin: the pull fails, nothing installed
        r = d.cli("plugin", "install", "--grant-all-permissions", f"{reg.host}/none:x",
                  check=False)
        assert r.returncode != 0
        assert d.out("plugin", "ls", "--format", "{{.Name}}").split() == ["itvp:latest"]
    finally:
        d.cli("volume", "rm", "-f", "ivol", check=False)
        _rm(d, "itvp", ref)


def _gzip_tar(entries: list[tuple[str, bytes | None]]) -> tuple[bytes, str]:
    """A gzip layer (name, data; None: a directory) and its diff id."""
    layer = LayerTar()
    for name, data in entries:
        if data is None:
            layer.dir(name)
        else:
            layer.file(name, data)
    plain = layer.finish()
    return gzip.compress(plain), sha256_digest(plain)


def test_layered_plugin_whiteouts(env):
    """A plugin of two layers from the registry: the second one's whiteout and opaque
    directory apply to the first one's files (as dockerd's ApplyLayer)."""
    d, _s, base, reg = env
    repo = "tests/layered"
    ref = f"{reg.host}/{repo}:1"
    try:
        ctx = write_plugin_dir(Path(tempfile.mkdtemp(dir=base)))
        (ctx / "rootfs" / "extra").write_text("from layer 1")
        (ctx / "rootfs" / "data" / "old").write_text("from layer 1")
        d.cli("plugin", "create", ref, str(ctx))
        d.out("plugin", "push", ref)
        d.cli("plugin", "rm", ref)
        accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
        st, _, raw = _req("GET", f"{reg.url}/v2/{repo}/manifests/1", headers=accept)
        assert st == 200
        man = json.loads(raw)
        st, _, cfg_raw = _req("GET", f"{reg.url}/v2/{repo}/blobs/{man['config']['digest']}")
        cfg = json.loads(cfg_raw)
        layer, diff_id = _gzip_tar([(".wh.extra", b""), ("data", None),
                                    ("data/.wh..wh..opq", b""), ("data/new", b"2"),
                                    ("added", b"from layer 2")])
        cfg["rootfs"]["diff_ids"].append(diff_id)
        cfg_blob = json.dumps(cfg).encode()
        man["config"].update(digest=upload_blob(reg.url, repo, cfg_blob), size=len(cfg_blob))
        man["layers"].append({"mediaType": man["layers"][0]["mediaType"], "size": len(layer),
                              "digest": upload_blob(reg.url, repo, layer)})
        put_manifest(reg.url, repo, "2", man)

        d.cli("plugin", "install", "--grant-all-permissions", "--alias", "ltvp",
              f"{reg.host}/{repo}:2")
        rootfs = Path(d.data_root) / "plugins" / _inspect(d, "ltvp")["Id"] / "rootfs"
        assert not (rootfs / "extra").exists()
        assert sorted(os.listdir(rootfs / "data")) == ["new"]
        assert (rootfs / "added").read_text() == "from layer 2"
        assert (rootfs / "plugin.py").is_file()             # layer 1 is still there
        d.cli("volume", "create", "-d", "ltvp", "lvol")       # and the plugin runs
        assert d.out("run", "--rm", "-v", "lvol:/v", "busybox", "cat", "/v/greeting") == \
            "hello"
    finally:
        d.cli("volume", "rm", "-f", "lvol", check=False)
        _rm(d, "ltvp", ref)


def test_live_restore_keeps_plugins_running(env):
    """With --live-restore an enabled plugin keeps running while the daemon is down and
    the next daemon adopts it (same process, still restarted when it dies); without,
    the daemon starts it again."""
    d, sockets, _base, _reg = env
    args = list(d.extra_args)
    try:
        _create(env, "lrp")
        d.cli("plugin", "enable", "lrp")
        pid = _inspect(d, "lrp")["Id"]
        d.stop()
        d.extra_args = [*args, "--live-restore"]
        _start(d, sockets)
        first = _plugin_pid(d, pid)
        assert first is not None
        d.stop()                                    # live-restore: the plugin stays
        assert _plugin_pid(d, pid) == first
        _start(d, sockets)
        assert _plugin_pid(d, pid) == first         # adopted, not started again
        d.cli("volume", "create", "-d", "lrp", "lrvol")
        assert d.out("run", "--rm", "-v", "lrvol:/v", "busybox", "cat",
                     "/v/greeting") == "hello"
        os.kill(first, signal.SIGKILL)              # watched as its own run was
        wait_until(lambda: _plugin_pid(d, pid) not in (None, first), timeout=20,
                   what="the adopted plugin started again")
        second = _plugin_pid(d, pid)
        d.stop()
        d.extra_args = args                          # no live-restore: started again
        _start(d, sockets)
        third = _plugin_pid(d, pid)
        assert third is not None and third != second
        d.cli("volume", "rm", "lrvol")
        d.stop()                                     # and stopped with the daemon
        assert _plugin_pid(d, pid) is None
        _start(d, sockets)
    finally:
        if d.extra_args != args or d.proc is None:
            if d.proc is not None:
                d.stop()
            d.extra_args = args
            _start(d, sockets)
        d.cli("volume", "rm", "-f", "lrvol", check=False)
        _rm(d, "lrp")
