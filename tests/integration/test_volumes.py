"""Volumes with the local driver through the docker CLI and the SDK: create, ls, inspect,
rm, prune; named, anonymous and image volumes in containers; tmpfs options; df; restart."""
from __future__ import annotations

import json
import os
import time

import pytest


def _vol(d, name: str) -> dict:
    return json.loads(d.out("volume", "inspect", name))[0]


def _volume_mounts(d, ref: str) -> list[dict]:
    return [m for m in d.inspect(ref)["Mounts"] if m["Type"] == "volume"]


def test_volume_create_ls_inspect_rm(daemon):
    d = daemon
    since = str(time.time())
    assert d.out("volume", "create", "--label", "tier=db", "--label", "x", "tv-db").strip() \
        == "tv-db"
    d.cli("volume", "create", "tv-web")
    v = _vol(d, "tv-db")
    assert v["Name"] == "tv-db" and v["Driver"] == "local" and v["Scope"] == "local"
    assert v["Labels"] == {"tier": "db", "x": ""}
    assert v["Mountpoint"] == os.path.join(d.data_root, "volumes", "tv-db", "_data")
    assert os.path.isdir(v["Mountpoint"])
    assert v["CreatedAt"].endswith("Z") and "UsageData" not in v
    # create of an existing name returns it, unchanged
    d.cli("volume", "create", "--label", "other=1", "tv-db")
    assert _vol(d, "tv-db")["Labels"] == {"tier": "db", "x": ""}

    ls = lambda *f: sorted(d.out("volume", "ls", "-q", *f).split())  # noqa: E731
    assert ls("--filter", "label=tier=db") == ["tv-db"]
    assert ls("--filter", "label=tier") == ["tv-db"]
    assert "tv-web" in ls("--filter", "name=tv-")
    assert "tv-db" in ls("--filter", "dangling=true")
    assert "tv-db" not in ls("--filter", "dangling=false")
    assert "tv-db" in ls("--filter", "driver=local")
    r = d.cli("volume", "ls", "--filter", "bogus=1", check=False)
    assert r.returncode != 0 and "invalid filter 'bogus'" in r.stderr_text

    r = d.cli("volume", "create", "bad/name", check=False)
    assert r.returncode != 0 and \
        'includes invalid characters for a local volume name' in r.stderr_text
    r = d.cli("volume", "create", "-d", "nosuchdrv", "tv-x", check=False)
    assert r.returncode != 0 and 'plugin "nosuchdrv" not found' in r.stderr_text
    r = d.cli("volume", "create", "--opt", "bogus=1", "tv-y", check=False)
    assert r.returncode != 0 and 'invalid option: "bogus"' in r.stderr_text

    d.cli("volume", "rm", "tv-db", "tv-web")
    assert not os.path.exists(v["Mountpoint"])
    r = d.cli("volume", "inspect", "tv-db", check=False)
    assert r.returncode != 0 and "no such volume" in r.stderr_text
    r = d.cli("volume", "rm", "tv-db", check=False)
    assert r.returncode != 0 and "no such volume" in r.stderr_text
    d.cli("volume", "rm", "-f", "tv-db")              # force hides "no such volume"

    ev = d.out("events", "--since", since, "--until", str(time.time()), "--filter",
               "type=volume", "--format", "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.driver}}")
    assert "create tv-db local" in ev and "destroy tv-db local" in ev


def test_named_volume_persists_readonly_and_mount_flag(daemon):
    d = daemon
    since = str(time.time())
    d.cli("run", "--rm", "-v", "tv-data:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    assert d.out("run", "--rm", "-v", "tv-data:/data:ro", "busybox", "cat", "/data/f") \
        == "kept\n"
    r = d.cli("run", "--rm", "-v", "tv-data:/data:ro", "busybox", "touch", "/data/g",
              check=False)
    assert r.returncode != 0 and "Read-only file system" in r.stderr_text
    # --mount type=volume creates a missing volume, with its options
    d.cli("run", "--rm", "--mount", "type=volume,src=tv-mnt,dst=/m,volume-label=a=b",
          "busybox", "sh", "-c", "echo m > /m/x")
    assert _vol(d, "tv-mnt")["Labels"] == {"a": "b"}
    assert d.out("run", "--rm", "--mount", "type=volume,source=tv-mnt,target=/m,readonly",
                 "busybox", "cat", "/m/x") == "m\n"
    # inspect shows the volume mount; ps filters by volume name and destination
    cid = d.out("create", "--name", "tv-user", "-v", "tv-data:/data", "busybox",
                "true").strip()
    try:
        [m] = _volume_mounts(d, cid)
        assert m == {"Type": "volume", "Name": "tv-data", "Destination": "/data",
                     "Source": _vol(d, "tv-data")["Mountpoint"], "Driver": "local",
                     "Mode": "", "RW": True, "Propagation": ""}
        assert d.out("ps", "-aq", "--no-trunc", "--filter", "volume=tv-data").split() == [cid]
        assert d.out("ps", "-aq", "--no-trunc", "--filter", "volume=/data").split() == [cid]
        # in use (by a stopped container too): conflict, even with -f
        for args in (["tv-data"], ["-f", "tv-data"]):
            r = d.cli("volume", "rm", *args, check=False)
            assert r.returncode != 0, r.stdout_text
            assert f"remove tv-data: volume is in use - [{cid}]" in r.stderr_text
        assert "tv-data" in d.out("volume", "ls", "-q", "--filter", "dangling=false").split()
    finally:
        d.cli("rm", "tv-user")
    ev = d.out("events", "--since", since, "--until", str(time.time()), "--filter",
               "volume=tv-data", "--format",
               "{{.Action}} {{index .Actor.Attributes \"destination\"}} "
               "{{index .Actor.Attributes \"read/write\"}}")
    assert "mount /data true" in ev and "mount /data false" in ev and "unmount" in ev
    d.cli("volume", "rm", "tv-data", "tv-mnt")           # `rm` without -v kept them


def test_anonymous_volumes_rm_v_and_auto_remove(daemon):
    d = daemon
    cid = d.out("create", "-v", "/anon", "busybox", "true").strip()
    [m] = _volume_mounts(d, cid)
    assert m["Destination"] == "/anon" and len(m["Name"]) == 64
    v = _vol(d, m["Name"])
    assert v["Labels"] == {"com.docker.volume.anonymous": ""}
    d.cli("rm", "-v", cid)
    assert d.cli("volume", "inspect", m["Name"], check=False).returncode != 0

    # --rm removes anonymous volumes but not named ones
    before = set(d.out("volume", "ls", "-q").split())
    d.cli("run", "--rm", "-v", "/anon2", "-v", "tv-keep:/k", "busybox", "true")
    after = set(d.out("volume", "ls", "-q").split())
    assert after - before == {"tv-keep"}

    # plain rm keeps the anonymous volume; prune (no --all) takes only anonymous ones
    cid = d.out("create", "-v", "/anon3", "--label", "t=anon", "busybox", "true").strip()
    [m] = _volume_mounts(d, cid)
    d.cli("rm", cid)
    assert _vol(d, m["Name"])
    out = d.out("volume", "prune", "-f")
    assert m["Name"] in out and "tv-keep" not in out
    assert "tv-keep" in d.out("volume", "ls", "-q").split()
    d.cli("volume", "create", "--label", "tvprune=1", "tv-prune-me")
    out = d.out("volume", "prune", "-af", "--filter", "label=tvprune")
    assert "tv-prune-me" in out and "tv-keep" in d.out("volume", "ls", "-q").split()
    d.cli("volume", "rm", "tv-keep")


def test_image_volume_gets_copy_up(daemon):
    d = daemon
    d.cli("run", "--name", "tv-src", "busybox", "sh", "-c",
          "mkdir -p /data/sub && echo from-image > /data/sub/hello && chown 7:8 /data/sub")
    try:
        d.cli("commit", "--change", "VOLUME /data", "tv-src", "tv-volimg:1")
    finally:
        d.cli("rm", "tv-src")
    try:
        cid = d.out("create", "tv-volimg:1", "sh", "-c",
                    "cat /data/sub/hello; stat -c %u:%g /data/sub; echo new > /data/n").strip()
        [m] = _volume_mounts(d, cid)
        assert m["Destination"] == "/data" and m["RW"]
        d.cli("start", "-a", cid)
        out = d.out("logs", cid)
        assert out == "from-image\n7:8\n", out
        src = _vol(d, m["Name"])["Mountpoint"]
        assert sorted(os.listdir(src)) == ["n", "sub"]
        d.cli("rm", "-v", cid)
        assert not os.path.exists(src)
        # a bind/named volume at the image VOLUME path replaces the anonymous one,
        # and an empty named volume is filled too; nocopy leaves it empty
        assert d.out("run", "--rm", "-v", "tv-fill:/data", "tv-volimg:1", "cat",
                     "/data/sub/hello") == "from-image\n"
        assert d.out("run", "--rm", "--mount",
                     "type=volume,src=tv-nocopy,dst=/data,volume-nocopy", "tv-volimg:1",
                     "ls", "-A", "/data") == ""
        d.cli("volume", "rm", "tv-fill", "tv-nocopy")
    finally:
        d.cli("rmi", "tv-volimg:1")


def test_tmpfs_volume_mounted_while_used(daemon):
    d = daemon
    d.cli("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt",
          "o=size=10m", "tv-tmpfs")
    v = _vol(d, "tv-tmpfs")
    assert v["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=10m"}
    out = d.out("run", "--rm", "-v", "tv-tmpfs:/t", "busybox", "sh", "-c",
                "grep ' /t ' /proc/mounts; df -k /t | tail -1")
    assert "tmpfs /t tmpfs" in out and "10240" in out, out
    assert not os.path.ismount(v["Mountpoint"])          # unmounted when the user left
    d.cli("volume", "rm", "tv-tmpfs")


def test_bind_option_volume_and_failed_rm_start(daemon, tmp_path):
    d = daemon
    host = tmp_path / "host"
    host.mkdir()
    (host / "on-host").write_text("h\n")
    d.cli("volume", "create", "--opt", "type=none", "--opt", f"device={host}", "--opt",
          "o=bind", "tv-bind")
    assert d.out("run", "--rm", "-v", "tv-bind:/b", "busybox", "sh", "-c",
                 "cat /b/on-host; echo c > /b/from-ctr") == "h\n"
    assert (host / "from-ctr").read_text() == "c\n"
    d.cli("volume", "rm", "tv-bind")                 # unmounts, never deletes through
    assert sorted(os.listdir(host)) == ["from-ctr", "on-host"]
    # --rm whose start fails still takes its anonymous volumes along
    before = set(d.out("volume", "ls", "-q").split())
    r = d.cli("run", "--rm", "-v", "/anon", "busybox", "/no/such/cmd", check=False)
    assert r.returncode != 0
    assert set(d.out("volume", "ls", "-q").split()) == before


def test_system_df_lists_volumes(daemon):
    d = daemon
    d.cli("run", "--rm", "-v", "tv-df:/d", "busybox", "sh", "-c",
          "dd if=/dev/zero of=/d/blob bs=1024 count=300 2>/dev/null")
    cid = d.out("create", "-v", "tv-df:/d", "busybox", "true").strip()
    try:
        df = json.loads(d.out("system", "df", "-v", "--format", "{{json .}}"))
        [entry] = [v for v in df["Volumes"] if v["Name"] == "tv-df"]
        assert entry["Links"] == "1" and entry["Size"] in ("307.2kB", "307.2KB"), entry
        out = d.out("system", "df")
        line = next(ln for ln in out.splitlines() if ln.startswith("Local Volumes"))
        assert int(line.split()[2]) >= 1 and int(line.split()[3]) >= 1, line
    finally:
        d.cli("rm", cid)
        d.cli("volume", "rm", "tv-df")


def test_sdk_volumes(sdk):
    v = sdk.volumes.create("tv-sdk", labels={"sdk": "1"})
    assert v.attrs["Labels"] == {"sdk": "1"}
    assert [x.name for x in sdk.volumes.list(filters={"label": "sdk=1"})] == ["tv-sdk"]
    out = sdk.containers.run("busybox", ["sh", "-c", "echo s > /v/s; cat /v/s"],
                             volumes={"tv-sdk": {"bind": "/v", "mode": "rw"}}, remove=True)
    assert out == b"s\n"
    res = sdk.volumes.prune(filters={"label": "sdk=1", "all": "true"})
    assert res["VolumesDeleted"] == ["tv-sdk"] and res["SpaceReclaimed"] == 2
    with pytest.raises(Exception) as e:
        sdk.volumes.get("tv-sdk")
    assert "no such volume" in str(e.value)


def test_volumes_survive_restart(fresh_daemon):
    d = fresh_daemon()
    d.cli("run", "--rm", "-v", "tv-persist:/p", "busybox", "sh", "-c", "echo p > /p/f")
    d.cli("create", "--name", "tv-holder", "-v", "/anon", "busybox", "true")
    [anon] = _volume_mounts(d, "tv-holder")
    d.restart()
    assert d.out("run", "--rm", "-v", "tv-persist:/p", "busybox", "cat", "/p/f") == "p\n"
    assert _vol(d, anon["Name"])["Labels"] == {"com.docker.volume.anonymous": ""}
    r = d.cli("volume", "rm", anon["Name"], check=False)
    assert r.returncode != 0 and "volume is in use" in r.stderr_text
    d.cli("rm", "-v", "tv-holder")
    assert sorted(d.out("volume", "ls", "-q").split()) == ["tv-persist"]
