"""`docker plugin create`'s context (POST /plugins/create): a tar holding config.json
and rootfs/ (moby's splitConfigRootFSFromTar). The rootfs/ entries, re-rooted, become
the plugin's one layer: kept as a gzip blob (for push) and unpacked with the careful
extractor (images/tarsafe.py) into the new plugin's rootfs."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from ...errors import InvalidParameter
from ...images.tarsafe import bad_tar_is_invalid, clean_name, decompressed, unpack_layer
from .state import PluginStore
from ...util.lazy import lazy_import

if TYPE_CHECKING:
    import gzip
    import tarfile
else:   # loaded on first use: an idle daemon never needs it (issue 10)
    gzip = lazy_import("gzip")
    tarfile = lazy_import("tarfile")

CONFIG_LIMIT = 1 << 20


@dataclass
class Context:
    config: bytes
    layer_digest: str        # the gzip blob in the store
    diff_id: str             # sha256 of the uncompressed layer


def _rerooted(m: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """An entry under rootfs/, renamed to its path inside the rootfs; None otherwise."""
    name = clean_name(m.name)
    first, _, rest = name.partition("/")
    if first != "rootfs":
        return None
    m.name = rest or "."
    if m.islnk():
        target = clean_name(m.linkname)
        if target.startswith("rootfs/"):
            m.linkname = target[len("rootfs/"):]
    return m


def split_context(src: IO[bytes], store: PluginStore, rootfs: str) -> Context:
    """Read the context tar (worker thread): config.json, and rootfs/ unpacked into
    `rootfs` (an empty directory) and stored as the plugin's layer blob."""
    tmp = store.tmp_dir()
    layer_path = os.path.join(tmp, f"layer-{os.getpid()}-{id(src)}.tar.gz")
    config: bytes | None = None
    seen_rootfs = False
    h = hashlib.sha256()
    try:
        with bad_tar_is_invalid("failed to read from tar"), open(layer_path, "wb") as raw:
            hashing = _HashingWriter(raw, h)
            with gzip.GzipFile(fileobj=hashing, mode="wb", mtime=0) as gz, \
                    tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as out, \
                    tarfile.open(fileobj=decompressed(src), mode="r|") as tar:
                for m in tar:
                    if clean_name(m.name) == "config.json" and m.isreg():
                        if m.size > CONFIG_LIMIT:
                            raise InvalidParameter("config.json is too large")
                        f = tar.extractfile(m)
                        config = f.read() if f is not None else b""
                        continue
                    r = _rerooted(m)
                    if r is None:
                        continue
                    seen_rootfs = True
                    out.addfile(r, tar.extractfile(m) if m.isreg() else None)
    except BaseException:
        os.unlink(layer_path)
        raise
    if not seen_rootfs:
        os.unlink(layer_path)
        raise InvalidParameter("no rootfs found: EOF")
    if config is None:
        os.unlink(layer_path)
        raise InvalidParameter("config not found")
    digest = "sha256:" + h.hexdigest()
    try:
        with open(layer_path, "rb") as f:
            diff_id = unpack_layer(f, rootfs).diff_id
    except BaseException:
        os.unlink(layer_path)
        raise
    store.adopt_blob(layer_path, digest)
    return Context(config, digest, diff_id)


class _HashingWriter:
    def __init__(self, out: IO[bytes], h: "hashlib._Hash") -> None:
        self.out, self.h = out, h

    def write(self, b: bytes) -> int:
        self.h.update(b)
        return self.out.write(b)

    def flush(self) -> None:
        self.out.flush()
