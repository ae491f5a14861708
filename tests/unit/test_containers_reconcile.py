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


def test_leftover_files_are_set_aside_at_start_not_deleted(tmp_path):
    """Daemon start: what a crash left (a removal's `.rm-<id>`, an unknown container's
    directories) is renamed and handed back for the background purge; the start does
    not wait for the deletes of their files."""
    from pydockerd.containers.restore import _set_aside_orphans
    paths = Paths(str(tmp_path / "data"), str(tmp_path / "exec"))
    known, unknown, removed = "a" * 64, "b" * 64, "c" * 64
    data, bundles = os.path.dirname(paths.container_dir(known)), os.path.dirname(
        paths.bundle(known))
    for parent in (data, bundles):
        for name in (known, unknown, ".rm-" + removed):
            os.makedirs(os.path.join(parent, name, "upper", "etc"))

    def set_aside(cid):                 # Runner.set_aside: one rename per directory
        moved = []
        for parent in (data, bundles):
            os.rename(os.path.join(parent, cid), os.path.join(parent, ".rm-" + cid))
            moved.append(os.path.join(parent, ".rm-" + cid))
        return moved
    doomed = _set_aside_orphans(paths, {known}, set_aside)
    assert sorted(doomed) == sorted(os.path.join(parent, ".rm-" + cid)
                                    for parent in (data, bundles) for cid in (unknown, removed))
    assert all(os.path.isdir(os.path.join(p, "upper", "etc")) for p in doomed)
    assert all(os.path.isdir(os.path.join(parent, known)) for parent in (data, bundles))
    assert not any(os.path.exists(os.path.join(parent, unknown)) for parent in (data, bundles))
