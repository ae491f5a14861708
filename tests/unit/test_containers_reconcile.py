"""Which runtime leftovers start-up reconciliation removes."""
from __future__ import annotations

import os

from pydockerd.containers.paths import Paths
from pydockerd.containers.reconcile import stray_runtime_ids


def test_stray_runtime_ids(tmp_path):
    paths = Paths(str(tmp_path / "data"), str(tmp_path / "exec"))
    running, created, unknown = "a" * 64, "b" * 64, "c" * 64
    for cid in (running, created):
        os.makedirs(os.path.join(paths.runc_root, cid))
    os.makedirs(paths.bundle(unknown))
    os.makedirs(os.path.join(paths.runc_root, "not-an-id"))
    assert stray_runtime_ids(paths, {running}) == [created, unknown]


def test_stray_runtime_ids_without_exec_root(tmp_path):
    assert stray_runtime_ids(Paths(str(tmp_path / "d"), str(tmp_path / "e")), set()) == []
