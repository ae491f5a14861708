"""`docker cp` and the archive routes see the container's volumes and bind mounts,
running or not, with dockerd's rules (read-only mounts refuse writes, paths are
resolved as the container sees them, nothing leaves its root)."""
from __future__ import annotations

import io
import os
import tarfile
import uuid

import docker
import pytest

from polling import wait_until


def _tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _untar_one(chunks) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as t:
        for m in t:
            f = t.extractfile(m)
            if f is not None:
                return f.read()
    raise AssertionError("no file in the archive")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_cp_into_and_out_of_a_named_volume_running_and_stopped(daemon, tmp_path):
    d = daemon
    vol, c, other = _name("cpv"), _name("cpvc"), _name("cpvo")
    src = tmp_path / "f.txt"
    src.write_text("hello volume\n")
    d.cli("volume", "create", vol)
    try:
        d.cli("run", "-d", "--name", c, "-v", f"{vol}:/data", "busybox", "sleep", "300")
        d.cli("cp", str(src), f"{c}:/data/x")
        # the running container sees it in its volume
        assert d.out("exec", c, "cat", "/data/x") == "hello volume\n"
        d.cli("exec", c, "sh", "-c", "echo from-inside > /data/y")
        d.cli("cp", f"{c}:/data/y", str(tmp_path / "y"))
        assert (tmp_path / "y").read_text() == "from-inside\n"
        # stopped: the volume is mounted for the copy
        d.cli("stop", "-t", "0", c)
        src.write_text("while stopped\n")
        d.cli("cp", str(src), f"{c}:/data/z")
        d.cli("cp", f"{c}:/data/x", str(tmp_path / "x2"))
        assert (tmp_path / "x2").read_text() == "hello volume\n"
        # the data is in the volume, not hidden under its mount point
        out = d.out("run", "--rm", "--name", other, "-v", f"{vol}:/v", "busybox",
                    "cat", "/v/x", "/v/z")
        assert out == "hello volume\nwhile stopped\n"
        assert "/data/z" not in d.out("diff", c)
        # nothing of the copy stays mounted on the host
        with open("/proc/self/mountinfo") as f:
            assert c not in f.read()
    finally:
        d.cli("rm", "-f", c, check=False)
        d.cli("volume", "rm", vol, check=False)


def test_cp_bind_mount_and_image_volume_with_the_sdk(daemon, sdk, tmp_path):
    d = daemon
    host = tmp_path / "bind"
    host.mkdir()
    (host / "on-host.txt").write_text("host file\n")
    img, base, c = _name("cpimg"), _name("cpbase"), _name("cpsdk")
    d.cli("run", "--name", base, "busybox", "sh", "-c",
          "mkdir /vol && echo from-image > /vol/img.txt")
    try:
        d.cli("commit", "--change", "VOLUME /vol", base, img)
        ctr = sdk.containers.create(img, ["sleep", "300"], name=c,
                                    volumes={str(host): {"bind": "/mnt/b", "mode": "rw"}})
        # not started yet: the bind and the image's anonymous volume are there
        chunks, st = ctr.get_archive("/mnt/b/on-host.txt")
        assert _untar_one(chunks) == b"host file\n" and st["size"] == 10
        assert ctr.put_archive("/mnt/b", _tar("put.txt", b"via sdk\n"))
        assert (host / "put.txt").read_bytes() == b"via sdk\n"
        chunks, _ = ctr.get_archive("/vol/img.txt")
        assert _untar_one(chunks) == b"from-image\n"
        assert ctr.put_archive("/vol", _tar("anon.txt", b"anon\n"))
        ctr.start()
        assert ctr.exec_run(["cat", "/vol/anon.txt", "/mnt/b/put.txt"]).output == \
            b"anon\nvia sdk\n"
        [anon] = [m for m in d.inspect(c)["Mounts"] if m["Type"] == "volume"]
        assert open(os.path.join(anon["Source"], "anon.txt")).read() == "anon\n"
        # stat (HEAD) through a volume
        assert ctr.get_archive("/vol/anon.txt")[1]["size"] == 5
    finally:
        d.cli("rm", "-f", "-v", c, base, check=False)
        d.cli("rmi", img, check=False)


def test_cp_read_only_volume_and_symlink_leaving_the_volume(daemon, sdk, tmp_path):
    d = daemon
    vol, c = _name("cpro"), _name("cproc")
    secret = tmp_path / "host-secret"
    secret.write_text("host only\n")
    d.cli("volume", "create", vol)
    try:
        d.cli("run", "-d", "--name", c, "-v", f"{vol}:/rw", "-v", f"{vol}:/ro:ro",
              "busybox", "sh", "-c",
              f"ln -s /etc/passwd /rw/lnk && ln -s ../../../../../../..{secret} /rw/up "
              "&& ln -s /etc /rw/etc && sleep 300")
        wait_until(lambda: "lnk" in d.out("exec", c, "ls", "/rw"), what="the links")
        src = tmp_path / "f.txt"
        src.write_text("x\n")
        r = d.cli("cp", str(src), f"{c}:/ro/f.txt", check=False)
        assert r.returncode != 0 and "mounted volume is marked read-only" in r.stderr_text
        with pytest.raises(docker.errors.APIError) as e:
            sdk.containers.get(c).put_archive("/ro", _tar("g", b"g"))
        assert e.value.response.status_code == 400
        assert "g" not in d.out("exec", c, "ls", "/rw").split()
        # a symlink in the volume is resolved in the container's root, never the host's
        d.cli("cp", "-L", f"{c}:/rw/lnk", str(tmp_path / "passwd"))
        assert (tmp_path / "passwd").read_text().startswith("root:x:0:0:root:/root")
        r = d.cli("cp", "-L", f"{c}:/rw/up", str(tmp_path / "up"), check=False)
        assert r.returncode != 0 and not (tmp_path / "up").exists()
        # writing through a link that points out of the volume lands in the rootfs
        d.cli("cp", str(src), f"{c}:/rw/etc/")
        assert d.out("exec", c, "cat", "/etc/f.txt") == "x\n"
        assert not os.path.exists(f"/etc/f.txt") or open("/etc/f.txt").read() != "x\n"
    finally:
        d.cli("rm", "-f", c, check=False)
        d.cli("volume", "rm", vol, check=False)


def test_cp_tmpfs_is_not_seen_and_etc_files_are(daemon, tmp_path):
    """As dockerd: a tmpfs mount is not part of the copy view; the /etc files are."""
    d = daemon
    c = _name("cptmp")
    try:
        d.cli("run", "-d", "--name", c, "--tmpfs", "/tmpx", "--hostname", "cphost",
              "busybox", "sh", "-c", "echo in-tmpfs > /tmpx/z; sleep 300")
        wait_until(lambda: d.out("exec", c, "ls", "/tmpx").strip(), what="the tmpfs file")
        r = d.cli("cp", f"{c}:/tmpx/z", str(tmp_path / "z"), check=False)
        assert r.returncode != 0 and "Could not find the file /tmpx/z" in r.stderr_text
        d.cli("cp", f"{c}:/etc/hostname", str(tmp_path / "hostname"))
        assert (tmp_path / "hostname").read_text() == "cphost\n"
    finally:
        d.cli("rm", "-f", c, check=False)
