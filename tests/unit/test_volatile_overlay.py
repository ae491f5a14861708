"""images/volatile.py: when the overlay of a container may be mounted `volatile`, and
when the mark of an earlier volatile mount may be removed (same boot only)."""
from __future__ import annotations

import sys
from pathlib import Path

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
