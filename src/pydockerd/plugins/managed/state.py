"""Installed managed plugins on disk, as dockerd lays them out under <data-root>/plugins:

    <id>/config.json        the plugin record (what `docker plugin inspect` shows, plus
                            the config, layer and manifest digests), written atomically
    <id>/rootfs/            the unpacked rootfs the plugin runs in
    <id>/propagated-mount/  the host side of the config's PropagatedMount
    storage/blobs/sha256/   the config, layer (gzip) and manifest blobs, for push
    tmp/                    rootfs being unpacked (a failed install leaves nothing)

Lookups follow dockerd's resolvePluginID: a full ID, then the name (`tvp` is
`tvp:latest`), then a unique ID prefix."""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...errors import Conflict, InvalidParameter, NotFound
from ...images.references import parse_normalized
from ...util.fsatomic import write_atomic
from ...util.lazy import lazy_import

if TYPE_CHECKING:
    import hashlib
else:   # OpenSSL's digests: loaded by the first one (issue 10: idle memory)
    hashlib = lazy_import("hashlib")

log = logging.getLogger("pydockerd.plugins")
_FULL_ID = re.compile(r"^[a-f0-9]{64}$")


@dataclass
class PluginRecord:
    id: str
    name: str                          # familiar, tagged: tvp:latest
    config: dict[str, Any]             # config.parse_config's shape
    settings: dict[str, Any]           # Mounts, Env, Args, Devices
    enabled: bool = False
    reference: str = ""                # PluginReference: where it came from
    config_digest: str = ""
    blobsums: list[str] = field(default_factory=list)   # layer blobs (gzip)
    manifest: str = ""

    def to_disk(self) -> dict[str, Any]:
        return {"Id": self.id, "Name": self.name, "Enabled": self.enabled,
                "PluginReference": self.reference, "Config": self.config,
                "Settings": self.settings, "ConfigDigest": self.config_digest,
                "Blobsums": self.blobsums, "Manifest": self.manifest}

    @classmethod
    def from_disk(cls, d: dict[str, Any]) -> PluginRecord:
        return cls(d["Id"], d["Name"], d["Config"], d["Settings"], bool(d["Enabled"]),
                   d.get("PluginReference", ""), d.get("ConfigDigest", ""),
                   list(d.get("Blobsums") or []), d.get("Manifest", ""))


def plugin_name(s: str) -> str:
    """dockerd's name of a plugin reference: familiar, with :latest added; a digest is
    refused (canonical references are not permitted)."""
    ref = parse_normalized(s)
    if ref.digest:
        raise InvalidParameter("canonical references are not permitted")
    return ref.with_default_tag().familiar()


def same_plugin(ref: str, name: str) -> bool:
    """Whether a driver name a user gave (`tnp`, `tnp:latest`) names the plugin `name`."""
    if ref == name:
        return True
    try:
        return plugin_name(ref) == name
    except InvalidParameter:
        return False


class PluginStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self.plugins: dict[str, PluginRecord] = {}

    # --- paths --------------------------------------------------------------------------
    def dir(self, pid: str) -> str:
        return os.path.join(self.root, pid)

    def rootfs(self, pid: str) -> str:
        return os.path.join(self.root, pid, "rootfs")

    def propagated(self, pid: str) -> str:
        return os.path.join(self.root, pid, "propagated-mount")

    def tmp_dir(self) -> str:
        d = os.path.join(self.root, "tmp")
        os.makedirs(d, exist_ok=True)
        return d

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.root, "storage", "blobs", "sha256", digest.split(":", 1)[-1])

    # --- blobs --------------------------------------------------------------------------
    def put_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.exists(path):
            write_atomic(path, data)
        return digest

    def adopt_blob(self, path: str, digest: str) -> None:
        """Move a verified file into the blob store under its digest."""
        dst = self.blob_path(digest)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.replace(path, dst)

    def read_blob(self, digest: str) -> bytes:
        with open(self.blob_path(digest), "rb") as f:
            return f.read()

    def gc_blobs(self) -> None:
        """Blobs no installed plugin refers to go."""
        keep = set()
        for p in self.plugins.values():
            keep |= {p.config_digest, p.manifest, *p.blobsums}
        base = os.path.dirname(self.blob_path("sha256:x"))
        for name in os.listdir(base) if os.path.isdir(base) else []:
            if "sha256:" + name not in keep:
                try:
                    os.unlink(os.path.join(base, name))
                except OSError:
                    pass

    # --- records ------------------------------------------------------------------------
    def load(self) -> list[PluginRecord]:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        shutil.rmtree(os.path.join(self.root, "tmp"), ignore_errors=True)
        for name in os.listdir(self.root):
            path = os.path.join(self.root, name, "config.json")
            if name.endswith("-removing"):
                shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)
                continue
            if not _FULL_ID.match(name) or not os.path.isfile(path):
                continue
            try:
                with open(path, encoding="utf-8") as f:
                    rec = PluginRecord.from_disk(json.load(f))
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.error("plugin %s: unreadable record, skipped: %s", name, e)
                continue
            self.plugins[rec.id] = rec
        return list(self.plugins.values())

    def save(self, rec: PluginRecord) -> None:
        os.makedirs(self.dir(rec.id), mode=0o700, exist_ok=True)
        write_atomic(os.path.join(self.dir(rec.id), "config.json"),
                     json.dumps(rec.to_disk()), mode=0o600)
        self.plugins[rec.id] = rec

    def remove(self, rec: PluginRecord) -> None:
        """dockerd's atomicRemoveAll: renamed first, so a crash leaves no half plugin."""
        self.plugins.pop(rec.id, None)
        d = self.dir(rec.id)
        gone = d + "-removing"
        try:
            os.replace(d, gone)
        except FileNotFoundError:
            pass
        shutil.rmtree(gone, ignore_errors=True)

    def check_name_free(self, name: str) -> None:
        if any(p.name == name for p in self.plugins.values()):
            raise Conflict(f"plugin {name} already exists")

    def get(self, ref_or_id: str) -> PluginRecord:
        if _FULL_ID.match(ref_or_id) and ref_or_id in self.plugins:
            return self.plugins[ref_or_id]
        try:
            ref = parse_normalized(ref_or_id)
        except InvalidParameter:
            ref = None
        if ref is not None and not ref.digest:
            name = ref.with_default_tag().familiar()
            for p in self.plugins.values():
                if p.name == name:
                    return p
        found = [p for pid, p in self.plugins.items() if ref_or_id and
                 pid.startswith(ref_or_id)]
        if len(found) > 1:
            raise InvalidParameter(f'multiple plugins found for "{ref_or_id}"')
        if not found:
            raise NotFound(f'plugin "{ref_or_id}" not found')
        return found[0]

    def all(self) -> list[PluginRecord]:
        return list(self.plugins.values())
