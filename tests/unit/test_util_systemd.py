"""util/systemd.py: systemd's variables are taken once, fd:// names its sockets."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from pydockerd.errors import InvalidParameter
from pydockerd.util.systemd import ListenFd, SystemdEnv, monotonic_usec, take_environment


def test_variables_are_removed_and_fds_need_our_pid() -> None:
    env = {"NOTIFY_SOCKET": "/run/systemd/notify", "LISTEN_PID": str(os.getpid() + 1),
           "LISTEN_FDS": "1", "LISTEN_FDNAMES": "x", "PATH": "/bin"}
    got = take_environment(env)
    # inherited from an activated parent: not ours, and no child sees them again
    assert got == SystemdEnv("/run/systemd/notify", ())
    assert env == {"PATH": "/bin"}
    assert take_environment({}) == SystemdEnv(None, ())


def test_fd_hosts_select_all_a_number_or_a_name() -> None:
    env = SystemdEnv(None, (ListenFd(3, "pydockerd.socket"), ListenFd(4, "tcp"),
                            ListenFd(5, "tcp")))
    assert env.select("") == env.select("*") == [3, 4, 5]
    assert env.select("4") == [4]
    assert env.select("tcp") == [4, 5]
    with pytest.raises(InvalidParameter, match="fd 7 was not passed"):
        env.select("7")
    with pytest.raises(InvalidParameter, match="no socket named api"):
        env.select("api")
    with pytest.raises(InvalidParameter, match="no sockets found via socket activation"):
        SystemdEnv().select("")


def test_notify_sends_one_datagram_of_lines(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(tmp_path / "notify"))
        SystemdEnv(str(tmp_path / "notify")).notify("RELOADING=1", monotonic_usec())
        lines = manager.recv(1024).decode().split("\n")
    assert lines[0] == "RELOADING=1" and int(lines[1].split("=")[1]) > 0
    SystemdEnv().notify("READY=1")  # no manager: nothing to do
    SystemdEnv(str(tmp_path / "gone")).notify("READY=1")  # logged, not raised
