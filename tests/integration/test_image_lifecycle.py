"""Local image lifecycle through the docker CLI: save/load, import, commit,
history, prune, rmi conflicts, export -> import -> run."""
from __future__ import annotations

import functools
import http.server
import io
import json
import tarfile
import threading
from pathlib import Path

import docker
import pytest


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
                for m in tar}


def _import_supported(d) -> None:
    r = d.cli("import", "-", "lc-probe:1", input=b"\0" * 1024, check=False)
    if "not supported by pydockerd yet" in r.stderr_text:
        pytest.skip("POST /images/create?fromSrc is not routed to ImageService.import_image yet")
    d.cli("rmi", "lc-probe:1", check=False)


def test_save_rmi_load_same_id(fresh_daemon, images_dir):
    d = fresh_daemon()
    d.cli("load", "-i", str(images_dir / "layered.tar"))
    ids = {ref: d.inspect(ref)["Id"] for ref in ("busybox:latest", "layered:latest")}
    d.cli("tag", "busybox", "bb:two")
    data = d.cli("save", "busybox", "layered:latest", "bb:two").stdout
    files = _members(data)
    assert {"manifest.json", "index.json", "oci-layout"} <= set(files)
    manifest = json.loads(files["manifest.json"])
    tags = sorted(t for e in manifest for t in e["RepoTags"])
    assert tags == ["bb:two", "busybox:latest", "layered:latest"]
    for entry in manifest:                       # every layer blob is its diff id
        cfg = json.loads(files[entry["Config"]])
        assert [f"sha256:{p.rsplit('/', 1)[1]}" for p in entry["Layers"]] == \
            cfg["rootfs"]["diff_ids"]
    index = json.loads(files["index.json"])
    names = sorted(m["annotations"]["io.containerd.image.name"] for m in index["manifests"])
    assert names == ["docker.io/library/bb:two", "docker.io/library/busybox:latest",
                     "docker.io/library/layered:latest"]

    d.cli("rmi", "busybox", "bb:two", "layered")
    assert d.out("images", "-q") == ""
    out = d.out("load", input=data)
    assert "Loaded image: layered:latest" in out
    for ref, image_id in ids.items():
        assert d.inspect(ref)["Id"] == image_id
    assert d.out("run", "--rm", "layered").split() == ["/data/dir/c.txt", "/data/keep.txt"]
    # a save of a loaded image is byte-identical in its layers: a second round trip
    again = _members(d.cli("save", "layered").stdout)
    for name, body in again.items():
        if name.startswith("blobs/") and name in files:
            assert body == files[name], name
    # OCI-layout-only and manifest.json-only archives, gzip'd, load too
    for drop in ("manifest.json", "index.json"):
        d.cli("rmi", "layered")
        out = d.out("load", input=_rewrite(again, drop))
        assert "Loaded image: layered:latest" in out
        assert d.inspect("layered")["Id"] == ids["layered:latest"]


def _rewrite(files: dict[str, bytes], drop: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in files.items():
            if name == drop or name in ("blobs", "blobs/sha256"):
                continue
            ti = tarfile.TarInfo(name)
            ti.size = len(body)
            tar.addfile(ti, io.BytesIO(body))
    return buf.getvalue()


def test_commit_run_history_and_prune(daemon, tmp_path):
    d = daemon
    name = "lc-commit-src"
    d.cli("run", "-d", "--name", name, "busybox", "sh", "-c",
          "echo made > /made.txt && rm /bin/true && mkdir -p /d && echo x > /d/f && sleep 300")
    try:
        d.out("exec", name, "sh", "-c", "while [ ! -f /d/f ]; do sleep 0.05; done")
        image_id = d.out("commit", "-m", "my message", "-a", "me",
                         "--change", "ENV FOO=bar", "--change", 'CMD ["cat", "/made.txt"]',
                         name, "lc-committed:v1").strip()
        assert image_id.startswith("sha256:")
        assert d.inspect(name)["State"]["Status"] == "running"     # unpaused again
    finally:
        d.cli("rm", "-f", name)
    info = d.inspect("lc-committed:v1")
    assert info["Comment"] == "my message" and info["Author"] == "me"
    assert "FOO=bar" in info["Config"]["Env"]
    assert info["Parent"] == d.inspect("busybox")["Id"]
    assert len(info["RootFS"]["Layers"]) == len(d.inspect("busybox")["RootFS"]["Layers"]) + 1
    assert d.out("run", "--rm", "lc-committed:v1") == "made\n"
    r = d.cli("run", "--rm", "lc-committed:v1", "sh", "-c",
              "test -e /bin/true && echo present || echo gone; cat /d/f")
    assert r.stdout_text.split() == ["gone", "x"]

    hist = json.loads("[" + ",".join(d.out("history", "--no-trunc", "--format", "{{json .}}",
                                           "lc-committed:v1").splitlines()) + "]")
    assert hist[0]["ID"] == image_id and hist[0]["Comment"] == "my message"
    assert "sh -c echo made" in hist[0]["CreatedBy"]
    assert hist[1]["ID"] == d.inspect("busybox")["Id"]

    # save of a committed image, loaded back under another daemon state: same id
    saved = d.cli("save", "lc-committed:v1").stdout
    d.cli("rmi", "lc-committed:v1")
    d.cli("load", input=saved)
    assert d.inspect("lc-committed:v1")["Id"] == image_id

    # prune: a dangling image goes, tagged ones stay
    d.cli("tag", "lc-committed:v1", "lc-committed:v2")
    d.cli("rmi", "lc-committed:v1")
    cid = d.out("create", "lc-committed:v2").strip()
    d.cli("commit", cid, "lc-dangler:1")
    d.cli("rm", cid)
    d.cli("tag", "lc-dangler:1", "lc-dangler:2")
    d.cli("rmi", "lc-dangler:1", "lc-dangler:2")       # gone entirely (no container)
    cid = d.out("create", "lc-committed:v2").strip()
    dangling = d.out("commit", cid).strip()
    d.cli("rm", cid)
    assert dangling in d.out("images", "-q", "--no-trunc", "--filter", "dangling=true")
    out = d.out("image", "prune", "-f")
    assert dangling in out and "Total reclaimed space" in out
    assert d.cli("inspect", dangling, check=False).returncode != 0
    assert d.inspect("lc-committed:v2")["Id"] == image_id
    d.cli("rmi", "lc-committed:v2")
    assert d.cli("inspect", image_id, check=False).returncode != 0
    assert d.inspect("busybox")["Id"]


def test_rmi_conflicts(daemon):
    d = daemon
    d.cli("tag", "busybox", "lc-rmi:1")
    img = d.inspect("lc-rmi:1")["Id"]
    cid = d.out("run", "-d", "lc-rmi:1", "sleep", "300").strip()
    try:
        r = d.cli("rmi", "-f", img, check=False)
        assert r.returncode != 0
        assert "(cannot be forced) - image is being used by running container" in r.stderr_text
        r = d.cli("rmi", img, check=False)
        assert "(must be forced) - image is referenced in multiple repositories" \
            in r.stderr_text or "cannot be forced" in r.stderr_text
        # untagging one of several tags is fine
        assert "Untagged: lc-rmi:1" in d.out("rmi", "lc-rmi:1")
    finally:
        d.cli("rm", "-f", cid)


def test_import_stdin_url_and_export_roundtrip(daemon, tmp_path):
    d = daemon
    _import_supported(d)
    cid = d.out("create", "busybox", "true").strip()
    exported = d.cli("export", cid).stdout
    d.cli("rm", cid)
    out = d.out("import", "-m", "from stdin", "--change", "ENV A=1", "--change",
                'CMD ["sh", "-c", "echo $A"]', "-", "lc-imported:stdin", input=exported)
    image_id = out.strip().splitlines()[-1]
    info = d.inspect("lc-imported:stdin")
    assert info["Id"] == image_id and info["Comment"] == "from stdin"
    assert len(info["RootFS"]["Layers"]) == 1
    assert d.out("run", "--rm", "lc-imported:stdin") == "1\n"
    hist = d.out("history", "--format", "{{.Comment}}", "lc-imported:stdin").split("\n")
    assert hist[0] == "from stdin"

    (tmp_path / "rootfs.tar").write_bytes(exported)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/rootfs.tar"
        d.out("import", "--change", "WORKDIR /tmp", "--change", 'ENTRYPOINT ["pwd"]',
              url, "lc-imported:url")
    finally:
        srv.shutdown()
    assert d.out("run", "--rm", "lc-imported:url") == "/tmp\n"
    r = d.cli("import", "--change", "BOGUS x", "-", "lc-bad", input=exported, check=False)
    assert r.returncode != 0 and "not a valid change command" in r.stderr_text
    d.cli("rmi", "lc-imported:stdin", "lc-imported:url")


def test_system_df_shared_sizes(daemon, sdk):
    d = daemon
    d.cli("tag", "busybox", "lc-df:1")
    cid = d.out("create", "busybox", "true").strip()
    try:
        df = sdk.df()
        bb = [i for i in df["Images"] if "busybox:latest" in (i["RepoTags"] or [])][0]
        assert bb["Containers"] >= 1 and bb["Size"] > 0
        assert df["LayersSize"] >= bb["Size"]
    finally:
        d.cli("rm", cid)
        d.cli("rmi", "lc-df:1")


def test_commit_with_a_config(sdk):
    """POST /commit's body is a container Config merged over the container's."""
    c = sdk.containers.run("busybox", ["sleep", "300"], detach=True,
                           environment=["A=1", "B=2"], labels={"x": "1"})
    img = None
    try:
        img = c.commit("lc-conf", "v1", conf={
            "Env": ["B=3", "C=4"], "Cmd": ["cat", "/etc/hostname"], "Labels": {"y": "2"},
            "exposedPorts": {"443/tcp": {}}, "User": ""})
        cfg = img.attrs["Config"]
        assert {"A=1", "B=3", "C=4"} <= set(cfg["Env"]) and "B=2" not in cfg["Env"]
        assert cfg["Cmd"] == ["cat", "/etc/hostname"]
        assert cfg["Labels"] == {"x": "1", "y": "2"}
        assert cfg["ExposedPorts"] == {"443/tcp": {}}
        with pytest.raises(docker.errors.APIError) as ei:
            c.commit("lc-conf", "bad", conf={"Env": "A=1"})
        assert ei.value.status_code == 400 and "Config.Env" in str(ei.value)
    finally:
        c.remove(force=True)
        if img is not None:
            sdk.images.remove(img.id, force=True)


def test_rmi_right_after_rm_removes_the_layers(daemon):
    """A removed container's files are set aside and deleted after the answer: they
    pin no layer, so `rmi` right after `rm` works and leaves no layer behind."""
    import os
    d = daemon
    layers = os.path.join(d.data_root, "layers")

    def layer_dirs() -> set[str]:
        return {n for n in os.listdir(layers) if n != "l"}
    before = layer_dirs()
    src = "lc-rmi-src"
    d.cli("run", "--name", src, "busybox", "sh", "-c", "echo $$ > /own-layer")
    try:
        d.cli("commit", src, "lc-rmi:1")
    finally:
        d.cli("rm", "-f", src)
    try:
        assert len(layer_dirs() - before) == 1
        name = "lc-rmi-user"
        d.cli("run", "--name", name, "lc-rmi:1", "cat", "/own-layer")
        d.cli("rm", name)
        d.cli("rmi", "lc-rmi:1")
        assert layer_dirs() == before
    finally:
        d.cli("rmi", "-f", "lc-rmi:1", check=False)
