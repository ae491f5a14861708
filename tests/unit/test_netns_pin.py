"""network/sandbox.live_pin: a pin that follows a pid is trusted only while that
pid's cgroup still names the container (the pin's name), so a pid reused by a host
process after the container died is never entered."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from pydockerd.network.sandbox import live_pin


def test_a_pin_follows_its_pid_only_while_the_cgroup_names_it(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        with open(f"/proc/{proc.pid}/cgroup") as f:
            words = re.findall(r"[a-z_]{3,}", f.read())           # e.g. "memory"
        if not words:
            pytest.skip("the cgroup file names nothing usable as a pin name")
        word = words[0]
        ours = tmp_path / word                  # a name the pid's cgroup holds
        os.symlink(f"/proc/{proc.pid}/ns/net", ours)
        assert live_pin(str(ours))
        other = tmp_path / ("c0ffee" * 10 + "beef")   # another container's name
        os.symlink(f"/proc/{proc.pid}/ns/net", other)
        assert not live_pin(str(other))
    finally:
        proc.kill()
        proc.wait()
    assert not live_pin(str(ours))              # the process is gone
    held = tmp_path / "held"                    # the daemon's own descriptor
    os.symlink(f"/proc/{os.getpid()}/ns/net", held)
    assert live_pin(str(held))
    assert not live_pin(str(tmp_path / "missing"))
