"""ImageService end to end on a temporary data root: load, list, tag, remove, rootfs."""
from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import sys
import tarfile
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

try:
    import pydockerd  # noqa: F401
except ImportError:  # running without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from pydockerd.api.router import Router
from pydockerd.api.http import parse_filters
from pydockerd.api.routes.images import routes
from pydockerd.errors import Conflict, DockerError, InvalidParameter, NotFound
from pydockerd.events import EventBus
from pydockerd.images import ImageService
from pydockerd.images.snapshots import mounted
from pydockerd.api.wire_progress import lines as lines_of
from pydockerd.api.wire_images import disk_usage, history_to_wire, image_summary, image_to_wire
from pydockerd.images.model import DeleteRecord
from pydockerd.store import Store
from pydockerd.testing.images import build, build_all, busybox_path

pytestmark = pytest.mark.skipif(not busybox_path().exists(),
                                reason="test images need busybox-static")
IS_ROOT = os.geteuid() == 0


def _overlay_ok() -> bool:
    try:
        return IS_ROOT and "overlay" in Path("/proc/filesystems").read_text()
    except OSError:
        return False


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("images")
    build_all(d, ("busybox", "layered"))
    build("busybox", d / "bbgz.tar.gz", tag="other/bb:v1", compress=True)
    return {"busybox": d / "busybox.tar", "layered": d / "layered.tar",
            "gz": d / "bbgz.tar.gz", "dir": d}


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 65536):
        yield data[i:i + 65536]


def load(svc: ImageService, path_or_data: Path | bytes, quiet: bool = True) -> list[dict[str, Any]]:
    data = path_or_data if isinstance(path_or_data, bytes) else path_or_data.read_bytes()

    async def run() -> list[bytes]:
        return [line async for line in lines_of(svc.load(_chunks(data), quiet))]
    try:
        lines = asyncio.run(run())
    except DockerError as e:
        # an error before the first line: the API answers it as a plain error
        return [{"errorDetail": {"message": e.message}, "error": e.message, "raised": True}]
    assert all(line.endswith(b"\r\n") for line in lines)
    return [json.loads(line) for line in lines]


class FakeContainers:
    """The container facts an ImageService asks for (the daemon passes the registry)."""

    def __init__(self) -> None:
        self.using: dict[str, list[str]] = {}
        self.running: set[str] = set()

    def using_image(self, image_id: str) -> list[str]:
        return self.using.get(image_id, [])

    def is_running(self, container_id: str) -> bool:
        return container_id in self.running


class NoCommits:
    """The container verbs `POST /commit` uses, for a daemon without containers."""

    def get(self, ref: str) -> Any:
        raise NotFound(f"No such container: {ref}")

    async def pause(self, ref: str) -> None:
        raise NotFound(f"No such container: {ref}")

    async def unpause(self, ref: str) -> None:
        raise NotFound(f"No such container: {ref}")

    def lock(self, cid: str) -> asyncio.Lock:
        return asyncio.Lock()


@pytest.fixture
def containers() -> FakeContainers:
    return FakeContainers()


@pytest.fixture
def svc(tmp_path: Path, containers: FakeContainers) -> ImageService:
    events = EventBus()
    s = ImageService(str(tmp_path / "root"), Store(str(tmp_path / "db.sqlite")), events,
                     containers=containers)
    os.makedirs(s.data_root)
    asyncio.run(s.start())
    return s


def layer_dirs(svc: ImageService) -> list[str]:
    return sorted(n for n in os.listdir(svc.layers.root) if n != "l")


def test_load_list_resolve(svc: ImageService, fixtures: dict[str, Path]) -> None:
    out = load(svc, fixtures["busybox"])
    assert out == [{"stream": "Loaded image: busybox:latest\n"}]
    out = load(svc, fixtures["layered"], quiet=False)
    assert out[-1] == {"stream": "Loaded image: layered:latest\n"}
    assert any(m.get("status") == "Loading layer" for m in out)
    imgs = svc.list_images()
    assert sorted(t for i in imgs for t in i.repo_tags) == ["busybox:latest", "layered:latest"]
    lay = svc.resolve("layered")
    assert lay.repo_tags == ["layered:latest"] and len(lay.layers) == 3
    bb = svc.resolve("busybox:latest")
    assert bb.layers[0] == lay.layers[0]                     # the base layer is shared
    assert len(layer_dirs(svc)) == 3
    assert svc.resolve("docker.io/library/layered").id == lay.id
    assert svc.resolve(lay.id).id == lay.id
    assert svc.resolve(lay.id[7:19]).id == lay.id
    assert svc.resolve("sha256:" + lay.id[7:12]).id == lay.id
    with pytest.raises(NotFound, match="No such image: nope:latest"):
        svc.resolve("nope")
    assert os.listdir(svc.tmp_dir) == []
    events = [(e.action, e.attributes["name"]) for e in svc._events.history(0)]
    assert ("load", "busybox:latest") in events and ("tag", "layered:latest") in events
    # loading again unpacks nothing and keeps the layers
    inode = os.stat(svc.layers.diff_dir(lay.layers[1])).st_ino
    out = load(svc, fixtures["layered"], quiet=False)
    assert [m for m in out if "status" in m] == []
    assert os.stat(svc.layers.diff_dir(lay.layers[1])).st_ino == inode


def test_gzip_archive_and_retag(svc: ImageService, fixtures: dict[str, Path]) -> None:
    load(svc, fixtures["busybox"])
    out = load(svc, fixtures["gz"])
    assert out == [{"stream": "Loaded image: other/bb:v1\n"}]
    img = svc.resolve("other/bb:v1")
    assert img.repo_tags == ["busybox:latest", "other/bb:v1"]
    assert os.listdir(svc.tmp_dir) == []


def _truncated_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = 5000
        tar.addfile(info, io.BytesIO(b"z" * 5000))
    return buf.getvalue()[:1500]


@pytest.mark.parametrize("data", [b"", b"not a tar at all" * 100,
                                  gzip.compress(b"garbage" * 100),
                                  b"\x1f\x8b\x08\x00" + b"\xa5garbage" * 500,
                                  gzip.compress(b"x" * 10000)[:-200], _truncated_tar()])
def test_invalid_archive_leaves_nothing(svc: ImageService, data: bytes) -> None:
    out = load(svc, data)
    assert len(out) == 1 and out[0].get("raised") and out[0]["errorDetail"]["message"]
    assert layer_dirs(svc) == [] and os.listdir(svc.tmp_dir) == []
    assert svc.list_images() == []


def _tamper_last_layer(src: Path, dst: Path) -> None:
    """Copy the archive, replacing the last layer blob with a different valid tar."""
    manifest = json.loads(tarfile.open(src).extractfile("manifest.json").read())  # type: ignore[union-attr]
    victim = manifest[0]["Layers"][-1]
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as t:
        ti = tarfile.TarInfo("data/evil.txt")
        ti.size = 4
        t.addfile(ti, io.BytesIO(b"evil"))
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin:
            if m.name == victim:
                m.size = len(evil.getvalue())
                tout.addfile(m, io.BytesIO(evil.getvalue()))
            else:
                tout.addfile(m, tin.extractfile(m) if m.isfile() else None)


def test_diff_id_mismatch_rolls_back(svc: ImageService, fixtures: dict[str, Path],
                                     tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    _tamper_last_layer(fixtures["layered"], bad)
    out = load(svc, bad)
    assert "layer digest mismatch" in out[-1]["error"]
    assert layer_dirs(svc) == [] and os.listdir(svc.tmp_dir) == []
    assert svc.list_images() == []
    assert os.listdir(os.path.join(svc.layers.root, "l")) == []
    # a good image loaded before keeps its (shared) base layer
    load(svc, fixtures["busybox"])
    out = load(svc, bad)
    assert "error" in out[-1]
    assert len(layer_dirs(svc)) == 1


def test_tag_and_validation(svc: ImageService, fixtures: dict[str, Path]) -> None:
    load(svc, fixtures["busybox"])
    assert svc.tag("busybox", "myrepo/bb", "v2") == "myrepo/bb:v2"
    assert svc.tag("busybox", "localhost:5000/bb:x", None) == "localhost:5000/bb:x"
    img = svc.resolve("myrepo/bb:v2")
    assert img.repo_tags == ["busybox:latest", "localhost:5000/bb:x", "myrepo/bb:v2"]
    assert img.last_tag_time
    with pytest.raises(InvalidParameter, match="must be lowercase"):
        svc.tag("busybox", "Upper", None)
    with pytest.raises(InvalidParameter):
        svc.tag("busybox", "x", "bad tag!")
    with pytest.raises(InvalidParameter, match="ambiguous"):
        svc.tag("busybox", "sha256", "x")
    with pytest.raises(NotFound):
        svc.tag("nothere", "x", None)
    assert ("tag", "myrepo/bb:v2") in [(e.action, e.attributes["name"])
                                       for e in svc._events.history(0)]


def test_remove_semantics(svc: ImageService, fixtures: dict[str, Path],
                          containers: FakeContainers) -> None:
    load(svc, fixtures["busybox"])
    load(svc, fixtures["layered"])
    bb = svc.resolve("busybox")
    svc.tag("busybox", "second", None)
    with pytest.raises(Conflict, match=rf"unable to delete {bb.short_id} \(must be forced\) - "
                                       "image is referenced in multiple repositories"):
        svc.remove(bb.id[7:19])
    assert svc.remove("second") == [DeleteRecord(untagged="second:latest")]
    # a container uses the image: removing its only tag needs force
    containers.using[bb.id] = ["c" * 64]
    with pytest.raises(Conflict, match=r'unable to remove repository reference "busybox" '
                                       rf"\(must force\) - container cccccccccccc is using "
                                       rf"its referenced image {bb.short_id}"):
        svc.remove("busybox")
    with pytest.raises(Conflict, match="image is being used by stopped container"):
        svc.remove(bb.id)
    # forced: untagged, but the image (and its layers) stay for the container
    assert svc.remove("busybox", force=True) == [DeleteRecord(untagged="busybox:latest")]
    assert svc.resolve(bb.id).repo_tags == []
    assert [i.id for i in svc.list_images(filters={"dangling": ["true"]})] == [bb.id]
    containers.using.clear()
    recs = svc.remove(bb.id)
    assert recs == [DeleteRecord(deleted=bb.id)]              # base layer still used by layered
    lay = svc.resolve("layered")
    recs = svc.remove("layered")
    assert recs[0] == DeleteRecord(untagged="layered:latest")
    assert recs[1] == DeleteRecord(deleted=lay.id)
    assert {r.deleted for r in recs[2:]} == set(lay.layers)
    assert layer_dirs(svc) == [] and os.listdir(os.path.join(svc.layers.root, "l")) == []
    actions = [e.action for e in svc._events.history(0)]
    assert "untag" in actions and "delete" in actions
    with pytest.raises(NotFound):
        svc.remove("layered")


def test_filters(svc: ImageService, fixtures: dict[str, Path]) -> None:
    load(svc, fixtures["busybox"])
    load(svc, fixtures["layered"])
    svc.tag("busybox", "user/app", "v1")
    def tags(**kw: list[str]) -> list[str]:
        return sorted(t for i in svc.list_images(filters=kw) for t in i.repo_tags)
    assert tags(label=["org.example.fixture"]) == ["layered:latest"]
    assert tags(label=["org.example.fixture=layered"]) == ["layered:latest"]
    assert tags(label=["org.example.fixture=other"]) == []
    assert tags(reference=["busy*"]) == ["busybox:latest"]
    assert tags(reference=["*/*"]) == ["user/app:v1"]
    assert tags(reference=["layered:latest"]) == ["layered:latest"]
    assert tags(dangling=["true"]) == []
    assert len(tags(dangling=["false"])) == 3
    assert tags(before=["busybox"]) == [] and tags(since=["busybox"]) == []
    with pytest.raises(InvalidParameter, match="invalid filter 'bogus'"):
        svc.list_images(filters={"bogus": ["x"]})
    with pytest.raises(InvalidParameter, match="dangling=maybe"):
        svc.list_images(filters={"dangling": ["maybe"]})
    assert parse_filters({"dangling": {"true": True}, "label": ["a"]}) == \
        {"dangling": ["true"], "label": ["a"]}


def test_wire_and_history(svc: ImageService, fixtures: dict[str, Path]) -> None:
    load(svc, fixtures["layered"])
    img = svc.resolve("layered")
    w = image_to_wire(img, svc.image_graph_driver(img))
    assert w["Id"] == img.id and w["RepoTags"] == ["layered:latest"] and w["RepoDigests"] == []
    assert w["Config"]["Cmd"] == ["sh", "-c", "find /data -type f | sort"]
    assert w["Config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert w["RootFS"]["Layers"] == img.diff_ids and w["Size"] == img.size > 0
    assert w["GraphDriver"]["Name"] == "overlay2" and "LowerDir" in w["GraphDriver"]["Data"]
    assert w["Metadata"]["LastTagTime"] == "0001-01-01T00:00:00Z"
    assert "VirtualSize" not in w and image_to_wire(img, None, (1, 43))["VirtualSize"] == img.size
    s = image_summary(img)
    assert s["Created"] == 1700000000 and s["Labels"] == {"org.example.fixture": "layered"}
    assert s["SharedSize"] == -1 and s["Containers"] == -1 and "VirtualSize" not in s
    h = history_to_wire(svc.history("layered"))
    assert [e["Id"] for e in h] == [img.id, "<missing>", "<missing>"]
    assert h[0]["Tags"] == ["layered:latest"] and h[1]["Tags"] is None
    assert h[0]["CreatedBy"] == "mkimage layer 2" and h[2]["Size"] > 1000
    du = svc.usage()
    assert disk_usage(du)["LayersSize"] == img.size and disk_usage(du)["Images"][0]["Containers"] == 0
    assert du.layers_size == img.size and du.images[0].containers == 0


def test_routes_resolve(svc: ImageService) -> None:
    r = Router()
    r.add(routes(svc, NoCommits()))
    h, params = r.resolve("GET", "/images/json")
    assert params == {}
    _, params = r.resolve("GET", "/images/host:5000/a/b:v1/json")
    assert params == {"name": "host:5000/a/b:v1"}
    _, params = r.resolve("DELETE", "/images/library/busybox")
    assert params == {"name": "library/busybox"}
    _, params = r.resolve("POST", "/images/busybox/tag")
    assert params == {"name": "busybox"}
    assert r.resolve("POST", "/images/load")[1] == {}


@pytest.mark.skipif(not _overlay_ok(), reason="needs root and overlayfs")
def test_overlay_rootfs(svc: ImageService, fixtures: dict[str, Path]) -> None:
    load(svc, fixtures["layered"])
    img = svc.resolve("layered")
    cid = "f" * 64
    svc.create_rw_layer(cid, img)
    rootfs = svc.mount_rootfs(cid, img)
    try:
        assert mounted(rootfs)
        assert svc.mount_rootfs(cid, img) == rootfs            # idempotent
        files = sorted(str(p.relative_to(rootfs)) for p in Path(rootfs, "data").rglob("*")
                       if p.is_file())
        assert files == ["data/dir/c.txt", "data/keep.txt"]
        assert os.path.exists(os.path.join(rootfs, "bin/busybox"))
        Path(rootfs, "data/new.txt").write_text("new")
        os.unlink(os.path.join(rootfs, "data/keep.txt"))
        changes = svc.changes(cid)
        assert {"Path": "/data/new.txt", "Kind": 1} in changes
        assert {"Path": "/data/keep.txt", "Kind": 2} in changes
        assert {"Path": "/data", "Kind": 0} in changes
        assert svc.rw_size(cid) == 3
        assert svc.container_size(cid, img.id) == (3, 3 + img.size)
        gd = svc.graph_driver(cid, img.id)
        assert gd["Name"] == "overlay2" and gd["Data"]["MergedDir"] == rootfs  # type: ignore[index]
    finally:
        svc.unmount_rootfs(cid)
    assert not mounted(rootfs)
    svc.unmount_rootfs(cid)                                   # no-op when not mounted
    rootfs = svc.mount_rootfs(cid)                            # image from rwlayer.json
    assert Path(rootfs, "data/new.txt").read_text() == "new"
    svc.remove_rw_layer(cid)                                  # unmounts, then removes
    assert not mounted(rootfs) and not os.path.exists(svc.snapshots.container_dir(cid))
    # images used by no container can go, layers included
    svc.remove("layered")
    assert layer_dirs(svc) == []


@pytest.mark.skipif(not IS_ROOT, reason="whiteout devices need root")
def test_vfs_rootfs(tmp_path: Path, fixtures: dict[str, Path]) -> None:
    s = ImageService(str(tmp_path / "root"), Store(str(tmp_path / "db")), EventBus(), "vfs",
                     containers=FakeContainers())
    os.makedirs(s.data_root)
    asyncio.run(s.start())
    load(s, fixtures["layered"])
    cid = "e" * 64
    s.create_rw_layer(cid, s.resolve("layered"))
    rootfs = s.mount_rootfs(cid, s.resolve("layered"))
    files = sorted(str(p.relative_to(rootfs)) for p in Path(rootfs, "data").rglob("*"))
    assert files == ["data/dir", "data/dir/c.txt", "data/keep.txt"]
    assert os.path.islink(os.path.join(rootfs, "bin/sh"))
    s.remove_rw_layer(cid)
    assert not os.path.exists(rootfs)


def test_remove_async_and_register_image(svc: ImageService, fixtures: dict[str, Path]) -> None:
    from pydockerd.images.references import parse_normalized
    load(svc, fixtures["busybox"])
    bb = svc.resolve("busybox")
    raw = json.dumps(dict(bb.config, config={"Cmd": ["echo", "hi"]})).encode()
    img = svc.register_image(raw, [parse_normalized("derived:1")], parent=bb.id)
    assert img.repo_tags == ["derived:1"] and img.layers == bb.layers and img.parent == bb.id

    class Ctr:
        image_id = img.id
    assert svc.matches_container_image("busybox", Ctr()) is True       # an ancestor
    assert svc.matches_container_image("derived:1", Ctr()) is True
    assert svc.matches_container_image("nothere", Ctr()) is False
    with pytest.raises(Conflict, match="image has dependent child images"):
        svc.remove(bb.id, force=True)
    recs = asyncio.run(svc.remove_async("derived:1"))
    # untag and delete the child; its parent is still tagged, so pruning keeps it
    assert recs == [DeleteRecord(untagged="derived:1"), DeleteRecord(deleted=img.id)]
    assert svc.resolve("busybox").id == bb.id
    recs = asyncio.run(svc.remove_async("busybox"))
    assert DeleteRecord(deleted=bb.id) in recs and layer_dirs(svc) == []
    assert [e.action for e in svc._events.history(0)][-2:] == ["untag", "delete"]


def _request(method: str, path: str, params: dict[str, str], query: str = "",
             body: bytes = b"") -> Any:
    from pydockerd.api.http import Body, Request
    parts = [body]

    async def pull() -> bytes:
        return parts.pop() if parts else b""
    return Request(method, path, Request.parse_query(query), {}, Body(pull), (1, 50), params)


def test_route_handlers(svc: ImageService, fixtures: dict[str, Path]) -> None:
    from pydockerd.api.http import Response, StreamResponse
    r = Router()
    r.add(routes(svc, NoCommits()))

    async def call(method: str, path: str, query: str = "", body: bytes = b"") -> Any:
        handler, params = r.resolve(method, path)
        resp = await handler(_request(method, path, params, query, body))
        if isinstance(resp, StreamResponse):
            assert resp.content_type == "application/json"
            return [json.loads(line) async for line in resp.chunks]
        assert isinstance(resp, Response)
        return resp.status, (json.loads(resp.body) if resp.body else None)

    async def scenario() -> None:
        out = await call("POST", "/images/load", "quiet=1", fixtures["busybox"].read_bytes())
        assert out == [{"stream": "Loaded image: busybox:latest\n"}]
        status, imgs = await call("GET", "/images/json", 'filters={"reference":{"busybox":true}}')
        assert status == 200 and imgs[0]["RepoTags"] == ["busybox:latest"]
        status, body = await call("POST", "/images/busybox/tag", "repo=reg:5000/a/b&tag=t")
        assert (status, body) == (201, None)
        status, body = await call("GET", "/images/reg:5000/a/b:t/json")
        assert body["RepoTags"] == ["busybox:latest", "reg:5000/a/b:t"]
        status, body = await call("GET", "/images/busybox/history")
        assert body[0]["Tags"] == ["busybox:latest", "reg:5000/a/b:t"]
        status, body = await call("DELETE", "/images/reg:5000/a/b:t")
        assert body == [{"Untagged": "reg:5000/a/b:t"}]
    asyncio.run(scenario())


def test_a_removed_containers_set_aside_dir_keeps_no_layer(svc: ImageService,
                                                           fixtures: dict[str, Path]) -> None:
    """containers/.rm-<id> (a removal's files, deleted later) pins nothing: `rmi` right
    after `rm` removes the layers, and a failure path's drop_unused_layers drops a layer
    only such a directory names."""
    load(svc, fixtures["busybox"])
    bb = svc.resolve("busybox")
    kept, gone = "k" * 64, "g" * 64
    svc.create_rw_layer(kept, bb)
    svc.create_rw_layer(gone, bb)
    root = svc.snapshots.containers_root
    os.rename(os.path.join(root, gone), os.path.join(root, ".rm-" + gone))
    assert svc.snapshots.layers_in_use() == set(bb.layers)
    svc.remove_rw_layer(kept)
    assert svc.snapshots.layers_in_use() == set()
    svc.remove("busybox")
    assert layer_dirs(svc) == []


@pytest.mark.skipif(not IS_ROOT, reason="the init layer's files need root")
def test_rw_layer_record_is_fsynced_unless_not_durable(svc: ImageService,
                                                       fixtures: dict[str, Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    load(svc, fixtures["layered"])
    img = svc.resolve("layered")
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    svc.create_rw_layer("a" * 64, img)
    assert len(synced) == 1
    svc.create_rw_layer("b" * 64, img, durable=False)       # an auto-remove container's
    assert len(synced) == 1
    records = [Path(svc.snapshots.container_dir(c), "rwlayer.json").read_text()
               for c in ("a" * 64, "b" * 64)]
    assert records[0] == records[1] and img.layers[0] in records[0]
    svc.remove_rw_layer("a" * 64)
    svc.remove_rw_layer("b" * 64)
