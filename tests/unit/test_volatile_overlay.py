"""images/volatile.py: when the overlay of a container may be mounted `volatile`, and
when the mark of an earlier volatile mount may be removed (same boot only)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import pytest

try:
    import pydockerd  # noqa: F401
except ImportError:  # running without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from pydockerd.errors import SystemError_
from pydockerd.images import volatile


@pytest.fixture
def cdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(volatile, "boot_id", lambda: "boot-now")
    monkeypatch.setattr(volatile.Support, "available", True)
    (tmp_path / "work").mkdir()
    return tmp_path


def mark(cdir: Path) -> Path:
    return cdir / "work" / "work" / "incompat" / "volatile"


def test_volatile_mount_records_the_boot(cdir: Path) -> None:
    assert volatile.prepare(str(cdir), str(cdir / "work"), True)
    assert (cdir / volatile.RECORD).read_text() == "boot-now"


def test_not_volatile_records_nothing(cdir: Path) -> None:
    assert not volatile.prepare(str(cdir), str(cdir / "work"), False)
    assert not (cdir / volatile.RECORD).exists()


def test_kernel_without_the_option(cdir: Path) -> None:
    volatile.Support.available = False
    assert not volatile.prepare(str(cdir), str(cdir / "work"), True)


def test_mark_of_this_boot_is_removed(cdir: Path) -> None:
    mark(cdir).mkdir(parents=True)
    (mark(cdir) / "dirty").write_text("")
    (cdir / volatile.RECORD).write_text("boot-now")
    assert not volatile.prepare(str(cdir), str(cdir / "work"), False)
    assert not mark(cdir).exists()


@pytest.mark.parametrize("recorded", ["boot-before", None])
def test_mark_of_another_boot_refuses_the_mount(cdir: Path, recorded: str | None) -> None:
    mark(cdir).mkdir(parents=True)
    if recorded is not None:
        (cdir / volatile.RECORD).write_text(recorded)
    with pytest.raises(SystemError_, match="may have lost writes"):
        volatile.prepare(str(cdir), str(cdir / "work"), True)
    assert mark(cdir).exists()


class _NoLayers:
    root = "/nonexistent"

    def lowerdirs(self, chain: list[str]) -> list[str]:
        return []


def _mount_failing(errno_: int, fails: list[str]) -> Callable[..., str]:
    """A _mount_overlay whose volatile mount fails with `errno_` (the others succeed);
    the options of each try are appended to `fails`."""
    def mount(self: object, rootfs: str, lowers: list[str], layers: list[str],
              tail: str) -> str:
        fails.append(tail)
        if tail.endswith(",volatile"):
            raise SystemError_("cannot mount the rootfs") from OSError(errno_, "refused")
        return rootfs
    return mount


@pytest.mark.parametrize("errno_,turned_off", [(22, True), (28, False), (16, False)])
def test_only_a_refused_option_turns_volatile_off(cdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                  errno_: int, turned_off: bool) -> None:
    """EINVAL, retried without the option and mounted: the kernel lacks it (off for
    good); any other failure (a full disk, a busy dir) is retried without it, and the
    next --rm container is volatile again."""
    import json

    from pydockerd.images.snapshots import Snapshots
    snaps = Snapshots(str(cdir), _NoLayers())               # type: ignore[arg-type]
    cid = "c" * 64
    (Path(snaps.container_dir(cid)) / "rootfs").mkdir(parents=True)
    (Path(snaps.container_dir(cid)) / "rwlayer.json").write_text(json.dumps({"layers": []}))
    tries: list[str] = []
    monkeypatch.setattr(Snapshots, "_mount_overlay", _mount_failing(errno_, tries))
    assert snaps.mount_rootfs(cid, volatile=True) == snaps.rootfs_path(cid)
    assert [t.endswith(",volatile") for t in tries] == [True, False]
    assert volatile.Support.available is not turned_off


def test_a_failure_without_the_option_too_keeps_it(cdir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from pydockerd.images.snapshots import Snapshots

    def never(self: object, rootfs: str, lowers: list[str], layers: list[str],
              tail: str) -> str:
        raise SystemError_("cannot mount the rootfs") from OSError(22, "Invalid argument")
    snaps = Snapshots(str(cdir), _NoLayers())               # type: ignore[arg-type]
    cid = "d" * 64
    (Path(snaps.container_dir(cid)) / "rootfs").mkdir(parents=True)
    (Path(snaps.container_dir(cid)) / "rwlayer.json").write_text(json.dumps({"layers": []}))
    monkeypatch.setattr(Snapshots, "_mount_overlay", never)
    with pytest.raises(SystemError_):
        snaps.mount_rootfs(cid, volatile=True)
    assert volatile.Support.available


def test_mount8s_words_for_a_refused_option() -> None:
    from pydockerd.errors import CommandFailed
    assert volatile.option_refused(CommandFailed(
        ["mount"], 32, "mount: /x: wrong fs type, bad option, bad superblock on overlay"))
    assert not volatile.option_refused(CommandFailed(
        ["mount"], 32, "mount: /x: No space left on device"))
