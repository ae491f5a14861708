"""The layer store: unpacked layers under data_root/layers, keyed by chain id.

    layers/<chain-hex>/diff/       the unpacked layer (overlay lowerdir)
    layers/<chain-hex>/meta.json   LayerInfo (also kept in the Store, kind "layer")
    layers/<chain-hex>/tar-split.{raw,json}   how to rebuild the original tar (save)
    layers/l/<short>  ->  ../<chain-hex>/diff     short links, like overlay2's,
                                   so many lowerdirs fit in one mount option page
    layers/tmp-*/                  layers being unpacked (removed at start-up)

A layer is unpacked into tmp-<random>/diff, verified, then renamed into place
in one step, so a half-made layer never appears under its chain id.
Blocking: call from worker threads.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import threading
from typing import TYPE_CHECKING, IO, Callable, Sequence

from ..errors import InvalidParameter, NotFound, SystemError_
from ..store import Store
from ..util.fsatomic import write_atomic
from ..util.idmap import IDENTITY, IdMap
from .model import LayerInfo
from ..util.lazy import lazy_import

if TYPE_CHECKING:
    import hashlib
    from . import tarsafe, tarsplit
else:   # OpenSSL's digests, the unpacking and the tar-split: loaded by the first layer
    # registered or replayed (issue 10: idle memory)
    hashlib = lazy_import("hashlib")
    tarsafe = lazy_import("pydockerd.images.tarsafe")
    tarsplit = lazy_import("pydockerd.images.tarsplit")

log = logging.getLogger("pydockerd.images")

KIND = "layer"


def chain_ids(diff_ids: list[str]) -> list[str]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def hex_of(digest: str) -> str:
    return digest.split(":", 1)[-1]


def short_link(chain_id: str) -> str:
    """A 26-character name derived from the chain id (Docker uses random ones)."""
    return base64.b32encode(bytes.fromhex(hex_of(chain_id))).decode()[:26]


class LayerStore:
    def __init__(self, root: str, store: Store, ids: IdMap = IDENTITY,
                 purge_listeners: Sequence[Callable[[], None]] = ()) -> None:
        self.root = root
        self.ids = ids          # --userns-remap: files are unpacked with the host ids
        self.links_dir = os.path.join(root, "l")
        self._store = store
        self._lock = threading.Lock()
        # called (no lock held) after layer dirs are purged: others' caches follow
        self.purge_listeners = tuple(purge_listeners)

    def setup(self) -> None:
        os.makedirs(self.links_dir, exist_ok=True)
        for name in os.listdir(self.root):
            if name.startswith("tmp-"):
                shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)

    # --- queries -----------------------------------------------------------
    def layer_dir(self, chain_id: str) -> str:
        return os.path.join(self.root, hex_of(chain_id))

    def diff_dir(self, chain_id: str) -> str:
        return os.path.join(self.layer_dir(chain_id), "diff")

    def get(self, chain_id: str) -> LayerInfo | None:
        doc = self._store.get(KIND, chain_id)
        if doc is None or not os.path.isdir(self.diff_dir(chain_id)):
            return None
        return LayerInfo.from_doc(doc)

    def exists(self, chain_id: str) -> bool:
        return self.get(chain_id) is not None

    def all(self) -> dict[str, LayerInfo]:
        return {k: LayerInfo.from_doc(v) for k, v in self._store.all(KIND).items()}

    def lowerdirs(self, chain: list[str]) -> list[str]:
        """Relative lowerdir paths (to be used from cwd=root), top layer first."""
        return [os.path.join("l", short_link(c)) for c in reversed(chain)]

    # --- changes -------------------------------------------------------------
    def unpack(self, src: IO[bytes], diff_id: str | None, parent: str
               ) -> tuple[LayerInfo, bool]:
        """Unpack one layer on top of chain `parent`; verify its diff id.

        diff_id None (import, commit): the layer's diff id is whatever the
        stream hashes to. Returns (info, created). A layer already present is
        not unpacked again (the stream is not read when diff_id is given).
        The tar-split is recorded beside it (tarsplit.py), so `docker save`
        can rebuild the exact tar. Raises InvalidParameter on a bad layer,
        leaving nothing behind.
        """
        if diff_id is not None:
            existing = self.get(self._chain(parent, diff_id))
            if existing is not None:
                return existing, False
        tmp = os.path.join(self.root, "tmp-" + os.urandom(8).hex())
        diff = os.path.join(tmp, "diff")
        os.makedirs(diff)
        try:
            res = tarsafe.unpack_layer(src, diff, record=True, ids=self.ids)
            if diff_id is not None and res.diff_id != diff_id:
                raise InvalidParameter(
                    f"layer digest mismatch: expected {diff_id}, got {res.diff_id}")
            chain = self._chain(parent, res.diff_id)
            info = LayerInfo(chain, res.diff_id, parent, res.size, short_link(chain))
            if res.split is not None:
                tarsplit.write(res.split, tmp)
            else:
                log.warning("layer %s: no tar-split (sparse files or duplicate names); "
                            "it cannot be saved", res.diff_id)
            write_atomic(os.path.join(tmp, "meta.json"), json.dumps(info.to_doc()))
            with self._lock:
                existing = self.get(chain)
                if existing is not None:      # another load won the race
                    return existing, False
                final = self.layer_dir(chain)
                if os.path.lexists(final):    # debris without a store record
                    shutil.rmtree(final)
                os.rename(tmp, final)
                link = os.path.join(self.links_dir, info.link)
                if os.path.lexists(link):
                    os.unlink(link)
                os.symlink(os.path.join("..", hex_of(chain), "diff"), link)
                self._store.put(KIND, chain, info.to_doc())
            return info, True
        finally:
            if os.path.lexists(tmp):
                shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _chain(parent: str, diff_id: str) -> str:
        return chain_ids([parent, diff_id])[1] if parent else diff_id

    def replay(self, chain_id: str) -> tarsplit.Replay:
        """A rebuilder of the layer's original (uncompressed) tar, for docker save."""
        info = self.get(chain_id)
        if info is None:
            raise NotFound(f"layer {chain_id} not found")
        split = tarsplit.load(self.layer_dir(chain_id))
        if split is None:
            raise SystemError_(f"layer {info.diff_id} cannot be saved: its original tar "
                               "layout was not recorded")
        return tarsplit.Replay(self.layer_dir(chain_id), self.diff_dir(chain_id), split,
                               info.diff_id)

    def remove(self, chain_id: str) -> str | None:
        """Unregister a layer and move its directory aside (fast, atomic).

        Returns the moved-aside directory, to be deleted with `purge` (slow:
        do it outside locks, in a worker thread); setup() purges leftovers.
        """
        with self._lock:
            self._store.delete(KIND, chain_id)
            link = os.path.join(self.links_dir, short_link(chain_id))
            if os.path.lexists(link):
                os.unlink(link)
            d = self.layer_dir(chain_id)
            if not os.path.lexists(d):
                return None
            doomed = os.path.join(self.root, "tmp-rm-" + os.urandom(8).hex())
            os.rename(d, doomed)
            return doomed

    def purge(self, paths: list[str]) -> None:
        for p in paths:
            shutil.rmtree(p, ignore_errors=True)
        if paths:
            for listener in self.purge_listeners:
                listener()
