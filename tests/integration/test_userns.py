"""--userns-remap: a daemon started by the test with a remapping user the test
creates (and removes, with its /etc/subuid and /etc/subgid lines, even on failure)."""
from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import docker
import pytest

from conftest import cleanup_daemon, make_daemon
from polling import wait_until
from pydockerd.remap import RANGE_LEN, next_range_start, parse_subid_file

pytestmark = pytest.mark.timeout(300)


def _drop_subids(user: str) -> None:
    for path in ("/etc/subuid", "/etc/subgid", "/etc/subuid-", "/etc/subgid-"):
        if not os.path.exists(path):
            continue
        with open(path) as f:
            lines = f.readlines()
        kept = [line for line in lines if not line.startswith(user + ":")]
        if kept != lines:
            with open(path, "w") as f:
                f.writelines(kept)


@pytest.fixture(scope="module")
def remap(images_dir):
    """(daemon, first subordinate id) for a daemon remapped to a test user."""
    user = "pdtu%06x" % random.randint(0, 0xFFFFFF)
    subprocess.run(["useradd", "-r", "-M", "-s", "/bin/false", user], check=True)
    tmp = Path(tempfile.mkdtemp(prefix="pdt-", dir="/tmp"))
    d = None
    try:
        taken = parse_subid_file("/etc/subuid", None) + parse_subid_file("/etc/subgid", None)
        start = next_range_start(taken) + RANGE_LEN * random.randint(1, 64)
        span = f"{start}-{start + RANGE_LEN - 1}"
        subprocess.run(["usermod", "-v", span, "-w", span, user], check=True)
        os.chmod(tmp, 0o711)                # the remapped root must reach its data root
        d = make_daemon(tmp, ["--userns-remap", user])
        d.start()
        d.cli("load", "-i", str(images_dir / "busybox.tar"))
        yield d, start
    finally:
        if d is not None:
            cleanup_daemon(d)
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["userdel", user], capture_output=True)
        _drop_subids(user)


@pytest.fixture
def client(remap):
    c = docker.DockerClient(base_url=remap[0].host, timeout=60)
    yield c
    c.close()


def _status_ids(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])


def test_info_and_root_dir(remap):
    d, start = remap
    info = json.loads(d.out("info", "--format", "{{json .}}"))
    assert "name=userns" in info["SecurityOptions"]
    assert info["DockerRootDir"] == os.path.join(d.data_root, f"{start}.{start}")
    st = os.stat(info["DockerRootDir"])
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, start, 0o710)


def test_container_root_is_the_first_subordinate_id(remap):
    d, start = remap
    d.cli("run", "-d", "--name", "sub", "busybox", "sleep", "300")
    try:
        pid = d.inspect("sub")["State"]["Pid"]
        assert _status_ids(pid) == (start, start)
        ps = subprocess.run(["ps", "-o", "uid=", "-p", str(pid)], capture_output=True,
                            text=True).stdout.strip()
        assert ps == str(start)
        assert d.out("exec", "sub", "id", "-u").strip() == "0"
        assert d.out("exec", "sub", "cat", "/proc/self/uid_map").split() == \
            ["0", str(start), str(RANGE_LEN)]
        # the exec'd process is remapped too
        assert d.out("exec", "sub", "sh", "-c", "cat /proc/$$/status | grep ^Uid").split()[1] \
            == "0"
        # the image's files are the container's root's; the rootfs belongs to it
        assert d.out("exec", "sub", "stat", "-c", "%u:%g", "/bin/busybox", "/").split() == \
            ["0:0", "0:0"]
        d.cli("exec", "sub", "sh", "-c", "echo 10.9.8.7 extra >> /etc/hosts")
        # a container sharing its network joins its user namespace (as dockerd)
        assert d.out("run", "--rm", "--network", "container:sub", "busybox", "cat",
                     "/proc/self/uid_map").split() == ["0", str(start), str(RANGE_LEN)]
    finally:
        d.cli("rm", "-f", "sub", check=False)


def test_volume_files_belong_to_the_subordinate_ids(remap):
    d, start = remap
    d.cli("run", "--rm", "-v", "uvol:/v", "busybox", "sh", "-c",
          "touch /v/f && chown 5:6 /v && mkdir /v/d")
    try:
        mp = d.out("volume", "inspect", "-f", "{{.Mountpoint}}", "uvol").strip()
        assert mp.startswith(os.path.join(d.data_root, f"{start}.{start}"))
        assert (os.stat(mp).st_uid, os.stat(mp).st_gid) == (start + 5, start + 6)
        for name in ("f", "d"):
            st = os.stat(os.path.join(mp, name))
            assert (st.st_uid, st.st_gid) == (start, start)
        # a new, empty volume belongs to the remapped root
        d.cli("volume", "create", "uvol2")
        mp2 = d.out("volume", "inspect", "-f", "{{.Mountpoint}}", "uvol2").strip()
        assert (os.stat(mp2).st_uid, os.stat(mp2).st_gid) == (start, start)
        assert d.out("run", "--rm", "-v", "uvol2:/w", "busybox", "sh", "-c",
                     "touch /w/ok && stat -c %u /w/ok").strip() == "0"
    finally:
        d.cli("volume", "rm", "uvol", "uvol2", check=False)


def _tar(name: str, data: bytes, uid: int, gid: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        ti = tarfile.TarInfo(name)
        ti.size, ti.uid, ti.gid, ti.mode = len(data), uid, gid, 0o644
        t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_cp_maps_ownership_both_ways(remap, client):
    d, start = remap
    ctr = client.containers.run("busybox", ["sleep", "300"], detach=True)
    try:
        ctr.exec_run(["sh", "-c", "echo hi > /tmp/x && chown 5:6 /tmp/x"])
        chunks, _ = ctr.get_archive("/tmp/x")
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as t:
            m = t.getmember("x")
            assert (m.uid, m.gid) == (5, 6)
        assert ctr.put_archive("/tmp", _tar("y", b"in\n", 7, 8))
        assert ctr.exec_run(["stat", "-c", "%u:%g", "/tmp/y"]).output.decode().strip() == "7:8"
        upper = d.inspect(ctr.id)["GraphDriver"]["Data"]["UpperDir"]
        st = os.stat(os.path.join(upper, "tmp", "y"))
        assert (st.st_uid, st.st_gid) == (start + 7, start + 8)
        # and through the CLI with -a (archive mode keeps the ids)
        src = Path(tempfile.mkdtemp(prefix="pdt-cp-", dir="/tmp"))
        try:
            (src / "z").write_text("z\n")
            os.chown(src / "z", 9, 10)
            d.cli("cp", "-a", str(src / "z"), f"{ctr.id}:/tmp/z")
            assert ctr.exec_run(["stat", "-c", "%u:%g", "/tmp/z"]).output.decode().strip() \
                == "9:10"
        finally:
            shutil.rmtree(src, ignore_errors=True)
    finally:
        ctr.remove(force=True)


def test_commit_and_save_have_unmapped_ids(remap):
    d, start = remap
    d.cli("run", "--name", "mk", "busybox", "sh", "-c",
          "echo made > /made && mkdir -p /opt/u && echo u > /opt/u/f && chown -R 5:6 /opt/u")
    try:
        d.cli("commit", "mk", "userns-commit:1")
        r = d.cli("save", "userns-commit:1")
        found: dict[str, tuple[int, int]] = {}
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as outer:
            for m in outer.getmembers():
                if not m.isfile() or m.name.endswith((".json", "layout")):
                    continue
                data = outer.extractfile(m).read()
                try:
                    with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                        for e in layer.getmembers():
                            found[e.name] = (e.uid, e.gid)
                except tarfile.TarError:
                    continue
        assert found["made"] == (0, 0)
        assert found["opt/u/f"] == (5, 6)
        assert found["bin/busybox"] == (0, 0)
        exported = d.cli("export", "mk").stdout
        with tarfile.open(fileobj=io.BytesIO(exported)) as t:
            owners = {m.name: (m.uid, m.gid) for m in t.getmembers()}
        assert owners["made"] == (0, 0) and owners["opt/u/f"] == (5, 6)
        # a container of the committed image sees them as they were made
        assert d.out("run", "--rm", "userns-commit:1", "stat", "-c", "%u:%g", "/made",
                     "/opt/u/f").split() == ["0:0", "5:6"]
    finally:
        d.cli("rm", "-f", "mk", check=False)
        d.cli("rmi", "-f", "userns-commit:1", check=False)


def test_userns_host_opts_out_and_privileged_needs_it(remap):
    d, start = remap
    assert d.out("run", "--rm", "--userns", "host", "busybox", "cat",
                 "/proc/self/uid_map").split() == ["0", "0", "4294967295"]
    r = d.cli("run", "--rm", "--privileged", "busybox", "true", check=False)
    assert r.returncode == 125
    assert "privileged mode is incompatible with user namespaces.  You must run the " \
        "container in the host namespace when running privileged mode" in r.stderr_text
    r = d.cli("run", "--rm", "--network", "host", "busybox", "true", check=False)
    assert "cannot share the host's network namespace when user namespaces are enabled" \
        in r.stderr_text
    r = d.cli("run", "--rm", "--pid", "host", "busybox", "true", check=False)
    assert "cannot share the host PID namespace when user namespaces are enabled" \
        in r.stderr_text
    assert d.out("run", "--rm", "--userns", "host", "--network", "host", "busybox",
                 "cat", "/proc/self/uid_map").split() == ["0", "0", "4294967295"]


def test_networking_ports_and_exec(remap):
    d, start = remap
    d.cli("network", "create", "unet")
    try:
        d.cli("run", "-d", "--name", "web", "--network", "unet", "-p", "127.0.0.1::80",
              "busybox", "sh", "-c",
              "mkdir /www && echo remapped > /www/index.html && httpd -f -p 80 -h /www")
        port = d.out("port", "web", "80").strip().rsplit(":", 1)[1]

        def fetch() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    return r.read().decode()
            except OSError:
                return ""
        assert wait_until(fetch, 20, what="published port") == "remapped\n"
        # container to container by name (embedded DNS), and exec
        assert d.out("run", "--rm", "--network", "unet", "busybox", "wget", "-qO-",
                     "http://web/").strip() == "remapped"
        assert d.out("exec", "web", "sh", "-c", "id -u; ip -o addr show eth0 | wc -l"
                     ).split()[0] == "0"
        assert d.out("exec", "web", "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"
                     ).strip() == "0"
    finally:
        d.cli("rm", "-f", "web", check=False)
        d.cli("network", "rm", "unet", check=False)


def test_build_in_a_remapped_daemon(remap):
    d, start = remap
    ctx = Path(tempfile.mkdtemp(prefix="pdt-ctx-", dir="/tmp"))
    try:
        (ctx / "f").write_text("from the context\n")
        (ctx / "Dockerfile").write_text(
            "FROM busybox AS one\n"
            "RUN mkdir /made && touch /made/r && chown 3:4 /made/r\n"
            "FROM busybox\n"
            "COPY f /f\n"
            "COPY --chown=7:8 f /g\n"
            "COPY --from=one /made /made\n"
            "RUN stat -c %u:%g /f /g /made/r > /owners\n")
        env = dict(os.environ, DOCKER_BUILDKIT="0")
        r = subprocess.run(["docker", "-H", d.host, "build", "-q", "-t", "userns-build:1",
                            str(ctx)], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr + d.log_tail()
        assert d.out("run", "--rm", "userns-build:1", "cat", "/owners").split() == \
            ["0:0", "7:8", "3:4"]
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
        d.cli("rmi", "-f", "userns-build:1", check=False)


def test_default_creates_dockremap(images_dir):
    """`--userns-remap=default` makes the dockremap user and its ranges, as dockerd;
    run only where the host has no dockremap (what the test made is removed)."""
    if subprocess.run(["getent", "passwd", "dockremap"], capture_output=True).returncode == 0:
        pytest.skip("the host already has a dockremap user")
    had_group = subprocess.run(["getent", "group", "dockremap"],
                               capture_output=True).returncode == 0
    tmp = Path(tempfile.mkdtemp(prefix="pdt-", dir="/tmp"))
    os.chmod(tmp, 0o711)
    d = make_daemon(tmp, ["--userns-remap", "default"])
    try:
        expected = next_range_start(parse_subid_file("/etc/subuid", None))
        d.start()
        assert subprocess.run(["getent", "passwd", "dockremap"], capture_output=True,
                              text=True).stdout.split(":")[6].strip() == "/bin/false"
        assert parse_subid_file("/etc/subuid", "dockremap") == [(expected, RANGE_LEN)]
        assert parse_subid_file("/etc/subgid", "dockremap")
        d.cli("load", "-i", str(images_dir / "busybox.tar"))
        gid = parse_subid_file("/etc/subgid", "dockremap")[0][0]
        assert d.out("info", "--format", "{{.DockerRootDir}}").strip() == \
            os.path.join(d.data_root, f"{expected}.{gid}")
        d.cli("run", "-d", "--name", "dflt", "busybox", "sleep", "300")
        assert _status_ids(d.inspect("dflt")["State"]["Pid"]) == (expected, gid)
    finally:
        cleanup_daemon(d)
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["userdel", "dockremap"], capture_output=True)
        if not had_group:
            subprocess.run(["groupdel", "dockremap"], capture_output=True)
        _drop_subids("dockremap")


def test_daemon_restart_releases_and_remakes_sandboxes(remap):
    d, start = remap
    d.cli("run", "-d", "--name", "rs", "busybox", "sleep", "300")
    try:
        pins = os.path.join(d.exec_root, "userns")
        cid = d.inspect("rs")["Id"]
        assert os.listdir(pins) == [cid]
        d.restart()                 # no live-restore: the container is stopped
        assert d.inspect("rs")["State"]["Running"] is False
        assert os.listdir(pins) == []
        d.cli("start", "rs")
        assert _status_ids(d.inspect("rs")["State"]["Pid"]) == (start, start)
        assert os.listdir(pins) == [cid]
    finally:
        d.cli("rm", "-f", "rs", check=False)
    assert os.listdir(os.path.join(d.exec_root, "userns")) == []
