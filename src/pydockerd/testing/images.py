"""The project's test images, built offline from the host's busybox-static.

No registry and no network: every image is the host's statically linked
busybox (Debian's busybox-static, /bin/busybox; `$BUSYBOX` overrides) plus
layers made here, written as `docker save` archives (see archive.py).

    python3 -m pydockerd.testing.images busybox -o busybox.tar [--tag busybox:latest]
    python3 -m pydockerd.testing.images layered -o layered.tar   # whiteout + opaque dir
    python3 -m pydockerd.testing.images big --size-mb 200 -o big.tar
    python3 -m pydockerd.testing.images all -d OUTDIR            # the three above

(with `PYTHONPATH=src` when pydockerd is not installed).

`layered` is three layers: busybox; /data/{a.txt, keep.txt, dir/b.txt}; then a
whiteout of a.txt and an opaque dir/ holding only c.txt. So
`docker run --rm layered` prints the sorted files under /data:
    /data/dir/c.txt
    /data/keep.txt
`big` is busybox plus one data layer of 4 MiB files, alternately random
(incompressible) and repetitive, about --size-mb in all.
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import struct
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .archive import LayerTar, write_archive

DEFAULT_BUSYBOX = "/bin/busybox"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LAYERED_FILES = ["/data/dir/c.txt", "/data/keep.txt"]   # what `docker run layered` prints
BIG_CHUNK = 4 << 20
# the busybox binary is the host's, so the image is for the host's architecture
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


class ImageBuildError(RuntimeError):
    """A test image cannot be built here (no static busybox, bad arguments)."""


def host_architecture() -> str:
    return _GOARCH.get(platform.machine(), platform.machine())


def busybox_path() -> Path:
    return Path(os.environ.get("BUSYBOX") or DEFAULT_BUSYBOX)


def is_static_elf(binary: bytes) -> bool:
    """True for an ELF executable without a program interpreter (PT_INTERP)."""
    if binary[:4] != b"\x7fELF" or len(binary) < 64:
        return False
    endian = "<" if binary[5] == 1 else ">"
    if binary[4] == 2:                                    # ELF64
        phoff, = struct.unpack_from(endian + "Q", binary, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", binary, 0x36)
    else:                                                 # ELF32
        phoff, = struct.unpack_from(endian + "I", binary, 0x1C)
        phentsize, phnum = struct.unpack_from(endian + "HH", binary, 0x2A)
    for i in range(phnum):
        off = phoff + i * phentsize
        if off + 4 > len(binary):
            return False
        if struct.unpack_from(endian + "I", binary, off)[0] == 3:   # PT_INTERP
            return False
    return True


def busybox_layer(busybox: Path | None = None) -> bytes:
    """The base layer: a static busybox, one symlink per applet, passwd and group."""
    path = busybox or busybox_path()
    try:
        binary = path.read_bytes()
    except OSError as e:
        raise ImageBuildError(f"{path}: {e.strerror} (apt-get install busybox-static)") from e
    if not is_static_elf(binary):
        raise ImageBuildError(f"{path} is not a statically linked executable "
                             "(apt-get install busybox-static, or set BUSYBOX)")
    applets = subprocess.run([str(path), "--list"], capture_output=True, text=True,
                             check=True, timeout=30).stdout.split()
    layer = LayerTar()
    for d in ("bin", "dev", "etc", "home", "proc", "root", "sys", "usr", "usr/bin",
              "var", "var/log"):
        layer.dir(d)
    layer.dir("tmp", 0o1777)
    layer.file("bin/busybox", binary, 0o755)
    for applet in sorted(set(applets) - {"busybox"}):
        layer.symlink(f"bin/{applet}", "busybox")
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
               b"nobody:x:65534:65534:nobody:/home:/bin/false\n")
    layer.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    return layer.finish()


def layered_layers(base: bytes) -> list[bytes]:
    """busybox, then files in /data, then a whiteout and an opaque directory."""
    two = LayerTar()
    two.dir("data")
    two.file("data/a.txt", b"deleted by a whiteout in the next layer\n")
    two.file("data/keep.txt", b"kept\n")
    two.dir("data/dir")
    two.file("data/dir/b.txt", b"hidden by an opaque dir in the next layer\n")
    three = LayerTar()
    three.dir("data")
    three.whiteout("data/a.txt")
    three.dir("data/dir")
    three.opaque("data/dir")
    three.file("data/dir/c.txt", b"c\n")
    return [base, two.finish(), three.finish()]


def big_layers(base: bytes, size_mb: int) -> list[bytes]:
    """busybox, then /blob/part-NNNN.bin: 4 MiB files, random and repetitive in turn."""
    if size_mb < 1:
        raise ImageBuildError(f"size must be at least 1 MB, not {size_mb}")
    data = LayerTar()
    data.dir("blob")
    rng = random.Random(42)
    for i in range(max(1, size_mb * (1 << 20) // BIG_CHUNK)):
        payload = rng.randbytes(BIG_CHUNK) if i % 2 == 0 else bytes([i % 251]) * BIG_CHUNK
        data.file(f"blob/part-{i:04d}.bin", payload)
    return [base, data.finish()]


@dataclass(frozen=True)
class Recipe:
    tag: str
    config: Mapping[str, Any]
    layers: Callable[[bytes, int], list[bytes]]    # (busybox layer, size_mb) -> layers


RECIPES: dict[str, Recipe] = {
    "busybox": Recipe("busybox:latest", {"Cmd": ["sh"], "Env": [PATH_ENV]},
                      lambda base, _size: [base]),
    "layered": Recipe("layered:latest",
                      {"Cmd": ["sh", "-c", "find /data -type f | sort"], "WorkingDir": "/data",
                       "Env": [PATH_ENV, "LAYERED=yes"],
                       "Labels": {"org.example.fixture": "layered"},
                       "ExposedPorts": {"8080/tcp": {}}},
                      lambda base, _size: layered_layers(base)),
    "big": Recipe("big:latest", {"Cmd": ["sh"], "Env": [PATH_ENV]}, big_layers),
}


@dataclass(frozen=True)
class BuiltImage:
    path: Path
    tag: str
    image_id: str


def build(name: str, out: Path, *, tag: str | None = None, size_mb: int = 100,
          compress: bool = False, busybox: Path | None = None) -> BuiltImage:
    """Write test image `name` (a key of RECIPES) to `out`, gzipped if `compress`."""
    if name not in RECIPES:
        raise ImageBuildError(f"unknown test image {name!r} (one of {', '.join(RECIPES)})")
    recipe = RECIPES[name]
    layers = recipe.layers(busybox_layer(busybox), size_mb)
    tag = tag or recipe.tag
    image_id = write_archive(out, tag, layers, recipe.config, host_architecture(), compress)
    return BuiltImage(out, tag, image_id)


def build_all(out_dir: Path, names: Sequence[str] = ("busybox", "layered"),
              busybox: Path | None = None) -> dict[str, BuiltImage]:
    """Build test images into `out_dir` as <name>.tar."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return {n: build(n, out_dir / f"{n}.tar", busybox=busybox) for n in names}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m pydockerd.testing.images",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", choices=[*RECIPES, "all"])
    p.add_argument("-o", "--output", type=Path, help="archive path (one image)")
    p.add_argument("-d", "--dir", type=Path, default=Path("."),
                   help="folder for <image>.tar (or .tar.gz) when there is no -o")
    p.add_argument("--tag", help="repository:tag to record (default: the image's own)")
    p.add_argument("--size-mb", type=int, default=100, help="data size for 'big'")
    p.add_argument("--gzip", action="store_true", help="gzip the whole archive")
    a = p.parse_args(argv)
    if a.image == "all" and (a.output or a.tag):
        p.error("'all' writes <image>.tar files into -d with their own tags")
    names = list(RECIPES) if a.image == "all" else [a.image]
    suffix = ".tar.gz" if a.gzip else ".tar"
    try:
        a.dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            out = a.output or a.dir / f"{name}{suffix}"
            img = build(name, out, tag=a.tag, size_mb=a.size_mb, compress=a.gzip)
            print(f"{img.path} {img.tag} {img.image_id}")
    except ImageBuildError as e:
        print(f"pydockerd.testing.images: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
