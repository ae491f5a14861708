"""The offline test-image builder (pydockerd.testing): archive layout, layers, CLI.

No root, no daemon; the tests that need the host's busybox-static skip without it.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import tarfile
from pathlib import Path
from typing import Any

import pytest

from pydockerd.testing import images
from pydockerd.testing.archive import EPOCH, LayerTar, split_tag, write_archive
from pydockerd.testing.images import (LAYERED_FILES, ImageBuildError, big_layers, build,
                                      busybox_layer, busybox_path, is_static_elf,
                                      layered_layers)

needs_busybox = pytest.mark.skipif(not busybox_path().exists(), reason="needs busybox-static")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tiny_base() -> bytes:
    layer = LayerTar()
    layer.dir("bin")
    layer.file("bin/sh", b"#!fake\n", 0o755)
    return layer.finish()


def _read(path: Path) -> dict[str, bytes]:
    """Every regular file of a (possibly gzipped) tar, by name."""
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile()}


def _apply(layers: list[bytes]) -> set[str]:
    """The files left after stacking layers with whiteouts and opaque dirs, as /paths."""
    files: set[str] = set()
    for layer in layers:
        with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
            members = tar.getmembers()
        for m in members:
            parent, _, name = m.name.rpartition("/")
            if name == ".wh..wh..opq":
                files = {f for f in files if not f.startswith(f"/{parent}/")}
        for m in members:
            parent, _, name = m.name.rpartition("/")
            if name.startswith(".wh."):
                gone = f"/{parent}/{name[4:]}" if parent else f"/{name[4:]}"
                files = {f for f in files if f != gone and not f.startswith(gone + "/")}
            elif m.isfile():
                files.add("/" + m.name)
    return files


def test_archive_has_oci_layout_and_manifest_json(tmp_path: Path) -> None:
    base, extra = _tiny_base(), LayerTar()
    extra.file("hello.txt", b"hi\n")
    layers = [base, extra.finish()]
    image_id = write_archive(tmp_path / "x.tar", "example.com:5000/a/b:v2", layers,
                             {"Cmd": ["sh"]})
    files = _read(tmp_path / "x.tar")
    for name, data in files.items():                 # every blob is named by its digest
        if name.startswith("blobs/sha256/"):
            assert name.rsplit("/", 1)[1] == hashlib.sha256(data).hexdigest()
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}

    [entry] = json.loads(files["manifest.json"])
    assert entry["RepoTags"] == ["example.com:5000/a/b:v2"]
    config = json.loads(files[entry["Config"]])
    assert _digest(files[entry["Config"]]) == image_id
    assert config["rootfs"]["diff_ids"] == [_digest(b) for b in layers]
    assert [files[p] for p in entry["Layers"]] == layers
    assert config["config"] == {"Cmd": ["sh"]} and len(config["history"]) == 2

    [desc] = json.loads(files["index.json"])["manifests"]
    assert desc["annotations"] == {"io.containerd.image.name": "example.com:5000/a/b:v2",
                                   "org.opencontainers.image.ref.name": "v2"}
    manifest = json.loads(files["blobs/sha256/" + desc["digest"].split(":")[1]])
    assert manifest["config"]["digest"] == image_id
    assert [d["digest"] for d in manifest["layers"]] == config["rootfs"]["diff_ids"]


def test_archive_is_reproducible_and_stores_a_layer_once(tmp_path: Path) -> None:
    layers = [_tiny_base(), _tiny_base()]            # the same layer twice
    write_archive(tmp_path / "a.tar", "t", layers, {})
    write_archive(tmp_path / "b.tar", "t", layers, {})
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:
        members = tar.getmembers()
    assert all(m.mtime == EPOCH and m.uid == 0 and m.gid == 0 for m in members)
    assert len([m for m in members if m.name.startswith("blobs/sha256/")]) == 3


@pytest.mark.parametrize("tag, want", [
    ("busybox", ("busybox", "latest")),
    ("other/bb:v1", ("other/bb", "v1")),
    ("localhost:5000/x", ("localhost:5000/x", "latest")),
    ("localhost:5000/x:2", ("localhost:5000/x", "2")),
])
def test_split_tag(tag: str, want: tuple[str, str]) -> None:
    assert split_tag(tag) == want


def test_whiteout_and_opaque_entries() -> None:
    layer = LayerTar()
    layer.whiteout("data/a.txt")
    layer.whiteout("top")
    layer.opaque("data/dir")
    with tarfile.open(fileobj=io.BytesIO(layer.finish())) as tar:
        assert tar.getnames() == ["data/.wh.a.txt", ".wh.top", "data/dir/.wh..wh..opq"]


def test_layered_leaves_what_the_image_prints() -> None:
    layers = layered_layers(_tiny_base())
    assert len(layers) == 3
    assert sorted(f for f in _apply(layers) if f.startswith("/data/")) == LAYERED_FILES
    assert {"/data/a.txt", "/data/dir/b.txt"} <= _apply(layers[:2])


def test_big_has_random_and_repetitive_parts() -> None:
    base, data = big_layers(_tiny_base(), 8)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        parts = {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                 for m in tar.getmembers() if m.isfile()}
    assert sorted(parts) == ["blob/part-0000.bin", "blob/part-0001.bin"]
    assert all(len(p) == 4 << 20 for p in parts.values())
    assert len(gzip.compress(parts["blob/part-0000.bin"], 1)) > 4_000_000    # incompressible
    assert len(set(parts["blob/part-0001.bin"])) == 1
    with pytest.raises(ImageBuildError):
        big_layers(base, 0)


def _elf64(program_types: list[int]) -> bytes:
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"                  # 64-bit, little endian
    struct.pack_into("<Q", header, 0x20, 64)         # program headers right after
    struct.pack_into("<HH", header, 0x36, 56, len(program_types))
    return bytes(header) + b"".join(struct.pack("<I", t) + bytes(52) for t in program_types)


def test_is_static_elf() -> None:
    assert is_static_elf(_elf64([1, 1]))             # PT_LOAD only
    assert not is_static_elf(_elf64([6, 3, 1]))      # PT_INTERP: dynamically linked
    assert not is_static_elf(b"#!/bin/sh\necho not elf\n" + bytes(64))


def test_a_missing_or_dynamic_busybox_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ImageBuildError, match="busybox-static"):
        busybox_layer(tmp_path / "nope")
    script = tmp_path / "busybox"
    script.write_bytes(_elf64([3]))
    with pytest.raises(ImageBuildError, match="not a statically linked"):
        busybox_layer(script)


def test_host_architecture(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images.platform, "machine", lambda: "x86_64")
    assert images.host_architecture() == "amd64"
    monkeypatch.setattr(images.platform, "machine", lambda: "aarch64")
    assert images.host_architecture() == "arm64"


@needs_busybox
def test_busybox_layer() -> None:
    with tarfile.open(fileobj=io.BytesIO(busybox_layer())) as tar:
        by_name = {m.name: m for m in tar.getmembers()}
    assert by_name["bin/busybox"].isfile() and by_name["bin/busybox"].mode == 0o755
    assert by_name["bin/sh"].issym() and by_name["bin/sh"].linkname == "busybox"
    assert by_name["tmp"].isdir() and by_name["tmp"].mode == 0o1777
    assert {"etc/passwd", "etc/group"} <= set(by_name)


@needs_busybox
def test_build_gzipped_with_a_tag(tmp_path: Path) -> None:
    img = build("layered", tmp_path / "l.tar.gz", tag="other/l:v1", compress=True)
    assert (tmp_path / "l.tar.gz").read_bytes()[:2] == b"\x1f\x8b"
    files = _read(img.path)
    [entry] = json.loads(files["manifest.json"])
    assert entry["RepoTags"] == ["other/l:v1"] and img.tag == "other/l:v1"
    assert _digest(files[entry["Config"]]) == img.image_id
    config: dict[str, Any] = json.loads(files[entry["Config"]])
    assert config["architecture"] == images.host_architecture()
    assert config["config"]["Labels"] == {"org.example.fixture": "layered"}
    assert _apply([files[p] for p in entry["Layers"]]) >= set(LAYERED_FILES)


@needs_busybox
def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
             monkeypatch: pytest.MonkeyPatch) -> None:
    assert images.main(["busybox", "-d", str(tmp_path / "out")]) == 0
    path, tag, image_id = capsys.readouterr().out.split()
    assert (path, tag) == (str(tmp_path / "out" / "busybox.tar"), "busybox:latest")
    files = _read(Path(path))
    assert _digest(files[json.loads(files["manifest.json"])[0]["Config"]]) == image_id

    monkeypatch.setenv("BUSYBOX", str(tmp_path / "missing"))
    assert images.main(["busybox", "-o", str(tmp_path / "x.tar")]) == 1
    assert "busybox-static" in capsys.readouterr().err
