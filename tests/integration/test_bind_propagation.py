"""Bind propagation as dockerd: inspect shows what was asked (rprivate by default),
the mount inside the container has it, and a shared (slave) bind of a source that
is not on a shared (shared or slave) mount is dockerd's start error."""
from __future__ import annotations

import subprocess
import uuid


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"



def _is_private(path: str) -> bool:
    out = subprocess.run(["findmnt", "-n", "-o", "PROPAGATION", "-T", path],
                         capture_output=True, text=True).stdout.strip()
    return out == "private"


def _mountinfo_line(d, ref: str, target: str) -> str:
    out = d.out("run", "--rm", *ref.split(), "busybox", "cat", "/proc/self/mountinfo")
    [line] = [ln for ln in out.splitlines() if ln.split(" ")[4] == target]
    return line


def _bind(d, name: str) -> dict:
    [m] = [m for m in d.inspect(name)["Mounts"] if m["Type"] == "bind"]
    return m


def test_propagation_is_shown_and_applied(daemon, shared_dir, tmp_path):
    d = daemon
    private = str(tmp_path)
    assert _is_private(private)
    names = [_name("prop") for _ in range(3)]
    try:
        d.cli("create", "--name", names[0], "-v", f"{private}:/x", "busybox")
        assert _bind(d, names[0])["Propagation"] == "rprivate"
        assert _bind(d, names[0])["Mode"] == ""
        d.cli("create", "--name", names[1], "-v", f"{shared_dir}:/x:rshared", "busybox")
        assert (_bind(d, names[1])["Propagation"], _bind(d, names[1])["Mode"]) == \
            ("rshared", "rshared")
        d.cli("create", "--name", names[2], "--mount",
              f"type=bind,src={shared_dir},dst=/x,bind-propagation=rslave", "busybox")
        assert (_bind(d, names[2])["Propagation"], _bind(d, names[2])["Mode"]) == \
            ("rslave", "")
    finally:
        d.cli("rm", *names, check=False)
    # applied: the container's mount is shared / a slave / private
    line = _mountinfo_line(d, f"-v {shared_dir}:/x:rshared", "/x")
    assert " shared:" in line
    line = _mountinfo_line(
        d, f"--mount type=bind,src={shared_dir},dst=/x,bind-propagation=rslave", "/x")
    assert " master:" in line and " shared:" not in line
    line = _mountinfo_line(d, f"-v {private}:/x", "/x")
    assert " shared:" not in line and " master:" not in line


def test_shared_propagation_needs_a_shared_source(daemon, tmp_path):
    d = daemon
    private = str(tmp_path)
    c1, c2 = _name("propbad"), _name("propbad")
    try:
        r = d.cli("run", "--name", c1, "-v", f"{private}:/x:rshared", "busybox", "true",
                  check=False)
        assert r.returncode != 0
        assert f"path {private} is mounted on " in r.stderr_text
        assert "but it is not a shared mount" in r.stderr_text
        assert "shared or slave" not in r.stderr_text
        assert _bind(d, c1)["Propagation"] == "rshared"
        r = d.cli("run", "--name", c2, "--mount",
                  f"type=bind,src={private},dst=/x,bind-propagation=slave", "busybox", "true",
                  check=False)
        assert r.returncode != 0 and "but it is not a shared or slave mount" in r.stderr_text
    finally:
        d.cli("rm", c1, c2, check=False)
    r = d.cli("create", "--mount", f"type=bind,src={private},dst=/x,bind-propagation=bogus",
              "busybox", check=False)
    assert r.returncode != 0 and \
        'invalid mount config for type "bind": invalid propagation mode: bogus' in r.stderr_text
    r = d.cli("create", "-v", "propvol:/x:rshared", "busybox", check=False)
    assert r.returncode != 0 and "field BindOptions must not be specified" in r.stderr_text
    d.cli("volume", "rm", "propvol", check=False)
