"""runtime/execfifo.py: runc's start done in-process, against a stand-in for
`runc init` (a process that opens the exec fifo, writes one byte and execs)."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import pydockerd  # noqa: F401
except ImportError:  # running without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from pydockerd.errors import SystemError_
from pydockerd.runtime.execfifo import FIFO, start_created

INIT = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CLOEXEC)   # blocks until the start opens it
if sys.argv[2] == "exec":
    os.write(fd, b"0")
    os.execv("/bin/sleep", ["sleep", "0.3"])
"""


def init(state: Path, mode: str) -> subprocess.Popen[bytes]:
    os.mkfifo(state / FIFO)
    return subprocess.Popen([sys.executable, "-c", INIT, str(state / FIFO), mode])


def test_start_lets_init_exec_and_removes_the_fifo(tmp_path: Path) -> None:
    proc = init(tmp_path, "exec")
    try:
        assert asyncio.run(asyncio.wait_for(start_created(str(tmp_path), proc.pid), 10))
        assert not (tmp_path / FIFO).exists()       # runc's state is `running` now
        # returned once init exec'd the process (the exec closed init's end)
        assert Path(f"/proc/{proc.pid}/cmdline").read_bytes() == b"sleep\x000.3\x00"
    finally:
        proc.wait(10)


def test_init_that_dies_without_writing(tmp_path: Path) -> None:
    proc = init(tmp_path, "die")
    try:
        with pytest.raises(SystemError_, match="already dead"):
            asyncio.run(asyncio.wait_for(start_created(str(tmp_path), proc.pid), 10))
        assert (tmp_path / FIFO).exists()
    finally:
        proc.wait(10)


def test_init_already_gone(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / FIFO)
    gone = subprocess.Popen(["true"])
    gone.wait()
    with pytest.raises(SystemError_, match="already dead"):
        asyncio.run(asyncio.wait_for(start_created(str(tmp_path), gone.pid), 10))


def test_no_fifo_is_left_to_the_runtime(tmp_path: Path) -> None:
    assert not asyncio.run(start_created(str(tmp_path), os.getpid()))
