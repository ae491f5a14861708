"""The daemon's process plumbing without threads: asyncio children waited by pidfd,
conmon's sync pipe read on the loop, an exec's process spec handed over in a memfd."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import warnings
from typing import Iterator

import pytest

from pydockerd.runtime.exec import _spec_memfd
from pydockerd.runtime.pidwatch import watch_children_by_pidfd
from pydockerd.util.fdstream import read_pipe


@pytest.fixture
def default_child_watcher() -> Iterator[None]:
    """The watcher is process-wide: later tests get the default one back."""
    yield
    if sys.version_info < (3, 12):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_child_watcher(None)


def test_children_are_waited_by_pidfd_without_a_thread_each(
        default_child_watcher: None) -> None:
    async def main() -> tuple[list[int], int, str]:
        watch_children_by_pidfd()
        before = threading.active_count()
        procs = [await asyncio.create_subprocess_exec("sh", "-c", f"sleep 0.2; exit {i}")
                 for i in range(5)]
        threads = threading.active_count() - before
        codes = [await p.wait() for p in procs]
        return codes, threads, type(asyncio.get_child_watcher()).__name__
    codes, threads, watcher = asyncio.run(main())
    assert codes == [0, 1, 2, 3, 4]
    if sys.version_info < (3, 12):
        assert watcher == "PidfdChildWatcher"
        assert threads == 0          # the default watcher had a waitpid thread per child


def test_sync_pipe_read_stops_at_the_first_line_while_the_writer_keeps_it_open() -> None:
    async def main() -> bytes:
        r, w = os.pipe()
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, os.write, w, b'{"data": ')
        loop.call_later(0.1, os.write, w, b'1234}\n')
        try:
            return await asyncio.wait_for(read_pipe(r, until=b"\n"), 5)
        finally:
            os.close(r)
            os.close(w)
    assert json.loads(asyncio.run(main())) == {"data": 1234}


def test_sync_pipe_read_ends_at_eof() -> None:
    async def main() -> bytes:
        r, w = os.pipe()
        os.write(w, b"partial")
        os.close(w)
        try:
            return await asyncio.wait_for(read_pipe(r, until=b"\n"), 5)
        finally:
            os.close(r)
    assert asyncio.run(main()) == b"partial"


def test_the_process_spec_memfd_reads_back_from_a_child_by_its_proc_path() -> None:
    spec = {"args": ["true"], "env": ["A=" + "x" * 100_000], "cwd": "/"}
    fd = _spec_memfd(spec)
    try:
        out = subprocess.run(["cat", f"/proc/self/fd/{fd}"], pass_fds=(fd,),
                             capture_output=True, check=True, timeout=30).stdout
    finally:
        os.close(fd)
    assert json.loads(out) == spec


def test_the_process_spec_memfd_is_not_inherited_unless_passed() -> None:
    fd = _spec_memfd({"args": ["true"]})
    try:
        r = subprocess.run(["cat", f"/proc/self/fd/{fd}"], close_fds=False,
                           capture_output=True, timeout=30)
    finally:
        os.close(fd)
    assert r.returncode != 0
