"""Where a container's files live (see docs/ARCHITECTURE.md, on-disk layout)."""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Paths:
    data_root: str
    exec_root: str

    def container_dir(self, cid: str) -> str:
        return os.path.join(self.data_root, "containers", cid)

    def persist_dir(self, cid: str) -> str:
        return os.path.join(self.data_root, "containers", cid, "conmon")

    def bundle(self, cid: str) -> str:
        return os.path.join(self.exec_root, "containers", cid)

    @property
    def exit_dir(self) -> str:
        return os.path.join(self.exec_root, "exits")

    @property
    def runc_root(self) -> str:
        return os.path.join(self.exec_root, "runc")
