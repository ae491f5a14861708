"""Managed plugins without a daemon: the config's checks and dockerd's inspect shape,
privileges (moby's computePrivileges), `docker plugin set` (moby's settable.go), the
store's lookups (resolvePluginID) and where a plugin's paths are on the host."""
from __future__ import annotations

import json
import socket

import pytest

from pydockerd.errors import InvalidParameter, NotFound
from pydockerd.plugins.client import PluginClient
from pydockerd.plugins.discovery import PluginDirs, PluginSpec, scan
from pydockerd.plugins.managed.config import (apply_set, initial_settings, kinds,
                                              parse_config, privileges, same_privileges)
from pydockerd.plugins.managed.state import PluginRecord, PluginStore, plugin_name
from pydockerd.plugins.registry import Plugin

BASE = {"Entrypoint": ["/bin/p"], "Interface": {"Types": ["docker.volumedriver/1.0"],
                                                "Socket": "p.sock"}}


def cfg(**extra: object) -> dict:
    return parse_config(json.dumps({**BASE, **extra}).encode())


def test_a_minimal_config_gets_every_field_as_dockerd_shows_it():
    c = cfg()
    assert list(c) == sorted(c)            # Go's field order
    assert c["Env"] is None and c["Mounts"] is None and c["Linux"] == {
        "AllowAllDevices": False, "Capabilities": None, "Devices": None}
    assert c["Args"] == {"Description": "", "Name": "", "Settable": None, "Value": None}
    assert c["User"] == {} and c["Network"] == {"Type": ""}
    assert kinds(c) == ("VolumeDriver",)


@pytest.mark.parametrize("raw,msg", [
    (b"{", "failed to parse config"),
    (b"[]", "failed to parse config"),
    (json.dumps({**BASE, "Entrypoint": "x"}).encode(), "Entrypoint"),
    (json.dumps({**BASE, "Entrypoint": []}).encode(), "Entrypoint is empty"),
    (json.dumps({**BASE, "Interface": {"Types": ["x"], "Socket": "p.sock"}}).encode(),
     "is not a plugin interface type"),
    (json.dumps({**BASE, "Interface": {"Types": ["docker.volumedriver/1.0"]}}).encode(),
     "Interface.Socket"),
    (json.dumps({**BASE, "Interface": {"Types": ["docker.volumedriver/1.0"],
                                       "Socket": "../x"}}).encode(), "Interface.Socket"),
    (json.dumps({**BASE, "Network": {"Type": "overlay"}}).encode(), "network type"),
    (json.dumps({**BASE, "PropagatedMount": "rel"}).encode(), "absolute"),
    (json.dumps({**BASE, "Mounts": [{"Source": 5}]}).encode(), "Mounts.Source"),
])
def test_bad_configs_are_400s(raw, msg):
    with pytest.raises(InvalidParameter, match=msg):
        parse_config(raw)


def test_privileges_in_moby_order_and_compared_as_sets():
    c = cfg(Network={"Type": "host"}, PidHost=True,
            Mounts=[{"Name": "m", "Source": "/usr", "Destination": "/usr"},
                    {"Name": "n", "Destination": "/x"}],
            Linux={"Capabilities": ["CAP_SYS_ADMIN"], "AllowAllDevices": True,
                   "Devices": [{"Name": "d", "Path": "/dev/fuse"}]})
    p = privileges(c)
    assert [x["Name"] for x in p] == ["network", "host pid namespace", "mount", "device",
                                      "allow-all-devices", "capabilities"]
    assert p[2]["Value"] == ["/usr"] and p[3]["Value"] == ["/dev/fuse"]
    assert same_privileges(p, list(reversed(p)))
    assert not same_privileges(p, p[1:])
    assert privileges(cfg(Network={"Type": "bridge"})) == []


def test_set_env_args_mounts_devices_as_moby():
    c = cfg(Env=[{"Name": "A", "Settable": ["value"], "Value": "1"},
                 {"Name": "B", "Value": "2"}],
            Args={"Name": "args", "Settable": ["value"], "Value": ["x"]},
            Mounts=[{"Name": "m", "Settable": ["source"], "Source": "/a", "Destination": "/b"}],
            Linux={"Devices": [{"Name": "d", "Settable": ["path"], "Path": "/dev/null"}]})
    s = initial_settings(c)
    assert s["Env"] == ["A=1", "B=2"] and s["Args"] == ["x"]
    new = apply_set(c, s, ["A=9", "args=p q", "m=/c", "d.path=/dev/zero"])
    assert new["Env"] == ["B=2", "A=9"] and new["Args"] == ["p", "q"]
    assert new["Mounts"][0]["Source"] == "/c" and new["Devices"][0]["Path"] == "/dev/zero"
    assert s["Env"] == ["A=1", "B=2"]                  # the input is left as it was
    for args, msg in ((["B=3"], '"B" is not settable'), (["m.target=/x"], '"m.target" is'),
                      (["Z=1", "Y"], 'setting "Z, Y" not found'),
                      (["=1"], "invalid format")):
        with pytest.raises(InvalidParameter, match=msg):
            apply_set(c, s, args)


def test_store_lookups_as_resolve_plugin_id(tmp_path):
    st = PluginStore(str(tmp_path))
    a = PluginRecord("ab" + "0" * 62, "tvp:latest", cfg(), initial_settings(cfg()))
    b = PluginRecord("ac" + "1" * 62, "127.0.0.1:5000/x/y:1.0", cfg(), initial_settings(cfg()))
    st.save(a)
    st.save(b)
    assert st.get("tvp") is a and st.get("tvp:latest") is a and st.get(a.id) is a
    assert st.get("127.0.0.1:5000/x/y:1.0") is b and st.get("ac") is b
    with pytest.raises(InvalidParameter, match="multiple plugins found"):
        st.get("a")
    with pytest.raises(NotFound, match='plugin "nope" not found'):
        st.get("nope")
    again = PluginStore(str(tmp_path))                 # what a restarted daemon reads
    assert sorted(r.name for r in again.load()) == sorted([a.name, b.name])
    st.remove(a)
    assert [r.id for r in PluginStore(str(tmp_path)).load()] == [b.id]
    assert plugin_name("docker.io/library/tvp") == "tvp:latest"
    with pytest.raises(InvalidParameter, match="canonical references"):
        plugin_name("tvp@sha256:" + "a" * 64)


def test_a_managed_plugins_paths_are_scoped_to_its_rootfs():
    p = Plugin("tvp:latest", PluginClient(PluginSpec("tvp", "unix:///x.sock")), (),
               rootfs="/d/plugins/i/rootfs", propagated_mount="/data",
               propagated_source="/d/plugins/i/propagated-mount")
    assert p.host_path("/data/v1") == "/d/plugins/i/propagated-mount/v1"
    assert p.host_path("/data") == "/d/plugins/i/propagated-mount/"
    assert p.host_path("/srv/v") == "/d/plugins/i/rootfs/srv/v"
    assert p.host_path("/database") == "/d/plugins/i/rootfs/database"
    legacy = Plugin("l", PluginClient(PluginSpec("l", "unix:///x.sock")), ())
    assert legacy.host_path("/srv/v") == "/srv/v"


def test_scan_skips_managed_plugins_socket_dirs(tmp_path):
    socks = []
    for rel in ("top.sock", "nested/nested.sock", "0123abcd/plugin.sock"):
        path = tmp_path / rel
        path.parent.mkdir(exist_ok=True)
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        socks.append(s)
    try:
        assert scan(PluginDirs(str(tmp_path), ())) == ["nested", "top"]
    finally:
        for s in socks:
            s.close()
