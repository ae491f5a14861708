"""The OCI runtimes containers run with (`--add-runtime`, HostConfig.Runtime)."""
from __future__ import annotations

import contextlib
from contextlib import AbstractAsyncContextManager
from typing import Any

from ..config import Config
from ..errors import InvalidParameter
from ..runtime.cgwarm import CgroupLockWarmer
from ..runtime.mountns import RuncNamespaces
from ..runtime.runc import Runc
from .model import Container


class Runtimes:
    def __init__(self, cfg: Config, runc_root: str,
                 create_ns: RuncNamespaces | None = None) -> None:
        self._binaries = dict(cfg.runtimes)
        self._default_name = cfg.default_runtime
        # where runc runs (runtime/mountns.py); None: the daemon's mount namespace
        self.create_ns = create_ns
        self._verbs_ns = create_ns.verbs_ns if create_ns is not None else lambda: ""
        self.default = Runc(cfg.runtimes[cfg.default_runtime], runc_root, self._verbs_ns)
        self._warmer = CgroupLockWarmer()

    @property
    def root(self) -> str:
        """runc's state directory (shared by every runtime binary)."""
        return self.default.root

    def of(self, c: Container) -> Runc:
        """The runtime the container was created with (HostConfig.Runtime)."""
        name = c.host_config.get("Runtime") or self._default_name
        binary = self._binaries.get(name)
        if binary is None:
            raise InvalidParameter(f"unknown or invalid runtime name: {name}")
        return self.default if binary == self.default.binary \
            else Runc(binary, self.root, self._verbs_ns)

    def create_namespace(self, rootfs: str,
                         spec: dict[str, Any]) -> AbstractAsyncContextManager[str | None]:
        """The mount namespace `runc create` of this rootfs and spec runs in, held for the
        block (runtime/mountns.py): its path, or None for the daemon's own."""
        if self.create_ns is None:
            return contextlib.nullcontext(None)
        return self.create_ns.for_create(rootfs, spec)

    def warm_cgroups(self) -> contextlib.AbstractContextManager[None]:
        """Keep the kernel's cgroup attach lock warm for the block: a start, so that
        `runc create`'s cgroup writes do not wait for an RCU grace period
        (runtime/cgwarm.py)."""
        return self._warmer.held()
