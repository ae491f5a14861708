"""Unit tests for OCI spec generation: caps, seccomp, users, mounts, resources."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

try:
    import pydockerd  # noqa: F401
except ImportError:  # running without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from pydockerd.errors import InvalidParameter
from pydockerd.runtime import caps, seccomp
from pydockerd.containers.mountspec import merge_tmpfs_options, parse_bind, parse_tmpfs
from pydockerd.runtime.host import HostFacts
from pydockerd.runtime.oci_spec import (
    DEFAULT_MASKED_PATHS,
    DEFAULT_READONLY_PATHS,
    INIT_PATH_IN_CONTAINER,
    build_env,
    build_spec,
)
from pydockerd.runtime.rlimits import RLIM_INFINITY, Ulimit
from pydockerd.runtime.secopts import parse_security_opts
from pydockerd.runtime.spec_input import DeviceSpec, MountSpec, SpecInput
from pydockerd.runtime.users import ExecUser, resolve_in_root, resolve_user

HOST_CAPS_NO_SYS_RESOURCE = [c for c in caps.KNOWN_CAPABILITIES if c != "CAP_SYS_RESOURCE"]


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
        "app:x:1000:1000:App:/home/app:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/home:/bin/false\n"
    )
    (root / "etc" / "group").write_text(
        "# comment\n"
        "root:x:0:root\n"
        "wheel:x:10:root,app\n"
        "app:x:1000:\n"
        "video:x:44:app\n"
        "nogroup:x:65534:\n"
    )
    return root


def make_input(rootfs: Path, **kw) -> SpecInput:
    base = dict(
        container_id="abc",
        rootfs=str(rootfs),
        args=["/bin/sh"],
        hostname="abc123",
        cgroups_path="/pydockerd/abc",
        host=HostFacts(tuple(HOST_CAPS_NO_SYS_RESOURCE), {"nofile": 20000}, cgroup_v2=True),
    )
    base.update(kw)
    return SpecInput(**base)


# ---------------------------------------------------------------- caps


def test_default_caps_mask() -> None:
    assert len(caps.DEFAULT_CAPABILITIES) == 14
    assert caps.caps_to_mask(caps.DEFAULT_CAPABILITIES) == 0xA80425FB


def test_caps_from_mask_roundtrip() -> None:
    assert caps.caps_from_mask(0x1FFFEFFFFFF) == HOST_CAPS_NO_SYS_RESOURCE
    assert caps.caps_from_mask(0xA80425FB) == sorted(
        caps.DEFAULT_CAPABILITIES, key=caps.KNOWN_CAPABILITIES.index
    )


def test_host_capabilities_reads_capbnd(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapBnd:\t00000000a80425fb\n")
    assert set(caps.host_capabilities(str(status))) == set(caps.DEFAULT_CAPABILITIES)
    assert caps.host_capabilities(str(tmp_path / "missing")) == list(caps.KNOWN_CAPABILITIES)


def test_tweak_caps_add_drop_normalises() -> None:
    got = caps.tweak_caps(caps.DEFAULT_CAPABILITIES, ["sys_admin", "CAP_NET_ADMIN"], ["net_raw", "Kill"],
                          available=caps.KNOWN_CAPABILITIES)
    assert "CAP_SYS_ADMIN" in got and "CAP_NET_ADMIN" in got
    assert "CAP_NET_RAW" not in got and "CAP_KILL" not in got
    assert len(got) == 14


def test_tweak_caps_all() -> None:
    got = caps.tweak_caps(caps.DEFAULT_CAPABILITIES, ["ALL"], ["NET_ADMIN"],
                          available=HOST_CAPS_NO_SYS_RESOURCE)
    assert got == [c for c in HOST_CAPS_NO_SYS_RESOURCE if c != "CAP_NET_ADMIN"]
    got = caps.tweak_caps(caps.DEFAULT_CAPABILITIES, ["chown"], ["all"],
                          available=caps.KNOWN_CAPABILITIES)
    assert got == ["CAP_CHOWN"]


def test_tweak_caps_privileged_gets_host_set() -> None:
    got = caps.tweak_caps(caps.DEFAULT_CAPABILITIES, [], [], privileged=True,
                          available=HOST_CAPS_NO_SYS_RESOURCE)
    assert got == HOST_CAPS_NO_SYS_RESOURCE


def test_tweak_caps_errors() -> None:
    with pytest.raises(InvalidParameter, match='unknown capability: "CAP_FOO"'):
        caps.tweak_caps(caps.DEFAULT_CAPABILITIES, ["foo"], [], available=caps.KNOWN_CAPABILITIES)
    with pytest.raises(InvalidParameter, match="not available in the current environment"):
        caps.tweak_caps(caps.DEFAULT_CAPABILITIES, ["SYS_RESOURCE"], [],
                        available=HOST_CAPS_NO_SYS_RESOURCE)


# ---------------------------------------------------------------- seccomp


def _names(profile: dict) -> set[str]:
    return {n for rule in profile["syscalls"] for n in rule["names"]}


def test_default_profile_shape() -> None:
    p = seccomp.default_profile(arch="amd64", kernel=(6, 1))
    assert p["defaultAction"] == "SCMP_ACT_ERRNO"
    assert p["defaultErrnoRet"] == 1
    assert p["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = _names(p)
    for n in ("read", "write", "execve", "clone", "arch_prctl", "ptrace", "socket", "personality"):
        assert n in names
    for n in ("mount", "umount2", "unshare", "setns", "reboot", "kexec_load", "bpf", "init_module"):
        assert n not in names
    assert "archMap" not in p
    for rule in p["syscalls"]:
        assert set(rule) <= {"names", "action", "args", "errnoRet"}


def test_default_profile_clone_rules_depend_on_sys_admin() -> None:
    p = seccomp.default_profile(caps.DEFAULT_CAPABILITIES, arch="amd64", kernel=(6, 1))
    clone_rules = [r for r in p["syscalls"] if r["names"] == ["clone"]]
    assert clone_rules == [{
        "names": ["clone"], "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}],
    }]
    clone3 = [r for r in p["syscalls"] if r["names"] == ["clone3"]]
    assert clone3 == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]

    admin = seccomp.default_profile([*caps.DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"],
                                    arch="amd64", kernel=(6, 1))
    names = _names(admin)
    assert {"mount", "umount2", "unshare", "setns", "clone3"} <= names
    assert not [r for r in admin["syscalls"] if r["names"] == ["clone"] and "args" in r]


def test_default_profile_arch_and_kernel_filters() -> None:
    arm = seccomp.default_profile(arch="arm64", kernel=(6, 1))
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arch_prctl" not in _names(arm)
    assert "arm_fadvise64_64" in _names(arm)
    old = seccomp.default_profile(arch="amd64", kernel=(4, 4))
    assert "ptrace" not in _names(old)
    ptrace = seccomp.default_profile([*caps.DEFAULT_CAPABILITIES, "CAP_SYS_PTRACE"],
                                     arch="amd64", kernel=(4, 4))
    assert "ptrace" in _names(ptrace)


def test_profile_for_variants() -> None:
    assert seccomp.profile_for(caps.DEFAULT_CAPABILITIES, "unconfined") is None
    assert seccomp.profile_for(caps.DEFAULT_CAPABILITIES, None, arch="amd64", kernel=(6, 1)) == \
        seccomp.default_profile(arch="amd64", kernel=(6, 1))
    custom = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"name": "mkdir", "action": "SCMP_ACT_ERRNO"},
            {"names": ["chown"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        ],
    }
    got = seccomp.profile_for(caps.DEFAULT_CAPABILITIES, json.dumps(custom), arch="amd64",
                              kernel=(6, 1))
    assert got == {"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    with pytest.raises(InvalidParameter, match="Decoding seccomp profile failed"):
        seccomp.profile_for([], "{not json")
    with pytest.raises(InvalidParameter, match="both 'architectures' and 'archMap'"):
        seccomp.profile_for([], json.dumps({"defaultAction": "SCMP_ACT_ALLOW",
                                            "architectures": ["SCMP_ARCH_X86_64"],
                                            "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}))
    assert seccomp.profile_for([], "{}") is None


def test_default_profile_is_a_fresh_copy() -> None:
    a = seccomp.docker_default_profile()
    a["syscalls"][0]["names"].append("mount")
    assert "mount" not in _names(seccomp.default_profile(arch="amd64", kernel=(6, 1)))


# ---------------------------------------------------------------- users


def test_resolve_user_default_root(rootfs: Path) -> None:
    u = resolve_user(str(rootfs), "")
    assert (u.uid, u.gid) == (0, 0)
    assert u.additional_gids == [0, 10]


def test_resolve_user_by_name_and_numeric(rootfs: Path) -> None:
    u = resolve_user(str(rootfs), "app")
    assert (u.uid, u.gid, u.additional_gids, u.home) == (1000, 1000, [1000, 10, 44], "/home/app")
    u = resolve_user(str(rootfs), "1000")
    assert (u.uid, u.gid) == (1000, 1000)
    u = resolve_user(str(rootfs), "4242")
    assert (u.uid, u.gid, u.additional_gids) == (4242, 0, [0])
    u = resolve_user(str(rootfs), "app:video")
    assert (u.uid, u.gid, u.additional_gids) == (1000, 44, [44])
    u = resolve_user(str(rootfs), "4242:777")
    assert (u.uid, u.gid) == (4242, 777)


def test_resolve_user_errors(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter,
                       match="unable to find user bob: no matching entries in passwd file"):
        resolve_user(str(rootfs), "bob")
    with pytest.raises(InvalidParameter,
                       match="unable to find group staff: no matching entries in group file"):
        resolve_user(str(rootfs), "app:staff")
    with pytest.raises(InvalidParameter, match="must be in range"):
        resolve_user(str(rootfs), "99999999999")


def test_resolve_user_group_add(rootfs: Path) -> None:
    u = resolve_user(str(rootfs), "nobody", ["video", "5000", "wheel"])
    assert u.additional_gids == [65534, 44, 5000, 10]
    with pytest.raises(InvalidParameter, match="unable to find group nope"):
        resolve_user(str(rootfs), "", ["nope"])


def test_resolve_user_without_passwd(tmp_path: Path) -> None:
    assert resolve_user(str(tmp_path), "").uid == 0
    assert resolve_user(str(tmp_path), "123:456") == ExecUser(123, 456, [456], "/")
    with pytest.raises(InvalidParameter, match="unable to find user app"):
        resolve_user(str(tmp_path), "app")


def test_passwd_symlink_resolved_inside_rootfs(tmp_path: Path) -> None:
    host = tmp_path / "host_etc"
    host.mkdir()
    (host / "passwd").write_text("evil:x:0:0::/:/bin/sh\n")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "real").mkdir()
    (root / "real" / "passwd").write_text("good:x:7:8::/:/bin/sh\n")
    # Absolute link: must resolve to <rootfs>/real/passwd, not the host's /real/passwd.
    os.symlink("/real/passwd", root / "etc" / "passwd")
    assert resolve_user(str(root), "good").uid == 7
    # A link climbing out with ".." stays inside the rootfs.
    os.remove(root / "etc" / "passwd")
    os.symlink("../../../../../../" + str(host / "passwd"), root / "etc" / "passwd")
    assert resolve_in_root(str(root), "/etc/passwd").startswith(str(root) + "/")
    with pytest.raises(InvalidParameter):
        resolve_user(str(root), "evil")


def test_resolve_in_root_symlink_loop(tmp_path: Path) -> None:
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(OSError):
        resolve_in_root(str(tmp_path), "/a")
    assert resolve_user(str(tmp_path), "5").uid == 5  # loop on /etc is not fatal


# ---------------------------------------------------------------- binds, tmpfs, security opts


def test_parse_bind() -> None:
    m = parse_bind("/host/dir:/ctr")
    assert m == MountSpec("/ctr", "/host/dir", "bind", ["rbind", "rprivate"])
    m = parse_bind("/host/dir/:/ctr/sub/:ro,z")
    assert m == MountSpec("/ctr/sub", "/host/dir", "bind", ["rbind", "ro", "rprivate"])
    m = parse_bind("/h:/c:rw,rshared")
    assert m.options == ["rbind", "rshared"]
    m = parse_bind("myvol:/data:ro")
    assert (m.type, m.source, m.options) == ("volume", "myvol", ["ro"])
    m = parse_bind("/anon")
    assert (m.type, m.source, m.destination) == ("volume", "", "/anon")


@pytest.mark.parametrize("spec,msg", [
    ("./rel:/ctr", "includes invalid characters"),
    ("a/b:/ctr", "includes invalid characters"),
    ("/h:/c:bogus", "invalid mode: bogus"),
    ("/h:/c:ro,rw", "invalid mode: ro,rw"),
    ("/h:rel", "mount path must be absolute"),
    ("/h:/", "destination can't be '/'"),
    (":/c", "invalid volume specification"),
    ("/h:ro", "invalid volume specification"),
    ("/a:/b:ro:x", "invalid volume specification"),
])
def test_parse_bind_errors(spec: str, msg: str) -> None:
    with pytest.raises(InvalidParameter, match=msg):
        parse_bind(spec)


def test_parse_tmpfs() -> None:
    m = parse_tmpfs("/run")
    assert m == MountSpec("/run", "tmpfs", "tmpfs", ["noexec", "nosuid", "nodev", "rprivate"])
    m = parse_tmpfs("/run", "size=64m,mode=1770,exec")
    assert m.options == ["nosuid", "nodev", "rprivate", "size=64m", "mode=1770", "exec"]
    assert merge_tmpfs_options(["size=1m", "size=2m", "noexec", "exec"]) == ["size=2m", "exec"]
    with pytest.raises(InvalidParameter):
        parse_tmpfs("/run", "bogus=1")
    with pytest.raises(InvalidParameter):
        parse_tmpfs("run")


def test_parse_security_opts() -> None:
    s = parse_security_opts(["no-new-privileges", "apparmor=unconfined", "label=disable",
                             "seccomp=unconfined"])
    assert s.no_new_privileges is True and s.seccomp == "unconfined"
    assert parse_security_opts(["no-new-privileges:false"]).no_new_privileges is False
    assert parse_security_opts(["no-new-privileges=true"]).no_new_privileges is True
    assert parse_security_opts(['seccomp={"a": "b:c"}']).seccomp == '{"a": "b:c"}'
    with pytest.raises(InvalidParameter, match='invalid --security-opt 1: "bogus"'):
        parse_security_opts(["bogus"])
    with pytest.raises(InvalidParameter, match='invalid --security-opt 2: "foo=bar"'):
        parse_security_opts(["foo=bar"])
    with pytest.raises(InvalidParameter, match="invalid --security-opt 2"):
        parse_security_opts(["no-new-privileges=maybe"])


# ---------------------------------------------------------------- build_spec


def test_build_env() -> None:
    env = build_env(["FOO=1", "PATH=/x"], "h", tty=True)
    assert env == ["PATH=/x", "HOSTNAME=h", "TERM=xterm", "FOO=1"]
    assert build_env(["TERM"], "h", tty=True) == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=h"]


def test_build_spec_defaults(rootfs: Path) -> None:
    spec = build_spec(make_input(rootfs, env=["A=b"]))
    json.dumps(spec)  # serialisable
    assert spec["ociVersion"] == "1.0.2-dev"
    assert spec["root"] == {"path": str(rootfs), "readonly": False}
    assert spec["hostname"] == "abc123"
    p = spec["process"]
    assert p["terminal"] is False
    assert p["user"] == {"uid": 0, "gid": 0, "additionalGids": [0, 10]}
    assert p["args"] == ["/bin/sh"] and p["cwd"] == "/"
    assert p["env"][1:] == ["HOSTNAME=abc123", "A=b"]
    assert p["env"][0].startswith("PATH=")
    assert p["capabilities"] == {k: list(caps.DEFAULT_CAPABILITIES)
                                 for k in ("bounding", "effective", "permitted")}
    assert p["noNewPrivileges"] is False and p["oomScoreAdj"] == 0
    assert "rlimits" not in p
    dests = [m["destination"] for m in spec["mounts"]]
    assert dests == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"]
    shm = spec["mounts"][-1]
    assert shm["options"] == ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]
    lx = spec["linux"]
    types = [n["type"] for n in lx["namespaces"]]
    assert {"mount", "network", "uts", "pid", "ipc"} <= set(types)
    assert all("path" not in n for n in lx["namespaces"])
    assert lx["cgroupsPath"] == "/pydockerd/abc"
    assert lx["maskedPaths"] == list(DEFAULT_MASKED_PATHS)
    assert "/proc/kcore" in lx["maskedPaths"]
    assert lx["readonlyPaths"] == list(DEFAULT_READONLY_PATHS)
    assert lx["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"} in \
        lx["resources"]["devices"]
    assert lx["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert lx["sysctl"]["net.ipv4.ip_unprivileged_port_start"] == "0"
    assert "devices" not in lx


def test_build_spec_requires_args_and_abs_rootfs(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter):
        build_spec(make_input(rootfs, args=[]))
    with pytest.raises(InvalidParameter):
        build_spec(SpecInput(rootfs="relative", args=["/bin/sh"], exec_user=ExecUser()))


def test_build_spec_user_and_tty(rootfs: Path) -> None:
    spec = build_spec(make_input(rootfs, user="app", group_add=["video"], tty=True, cwd="/work"))
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 10, 44]}
    assert spec["process"]["terminal"] is True
    assert "TERM=xterm" in spec["process"]["env"]
    assert spec["process"]["cwd"] == "/work"
    spec = build_spec(make_input(rootfs, exec_user=ExecUser(5, 6, [6])))
    assert spec["process"]["user"] == {"uid": 5, "gid": 6, "additionalGids": [6]}


def test_build_spec_namespaces(rootfs: Path) -> None:
    spec = build_spec(make_input(rootfs, netns_path="/run/netns/x", pid_mode="/proc/9/ns/pid",
                                 ipc_mode="host", uts_host=True, cgroupns_private=True))
    ns = spec["linux"]["namespaces"]
    assert {"type": "network", "path": "/run/netns/x"} in ns
    assert {"type": "pid", "path": "/proc/9/ns/pid"} in ns
    assert {"type": "cgroup"} in ns
    assert not any(n["type"] in ("ipc", "uts") for n in ns)
    assert spec["hostname"] == ""
    spec = build_spec(make_input(rootfs, netns_path=None, pid_mode="host", cgroupns_private=False))
    ns = spec["linux"]["namespaces"]
    assert not any(n["type"] in ("network", "pid", "cgroup") for n in ns)
    assert "net.ipv4.ping_group_range" not in spec["linux"].get("sysctl", {})
    with pytest.raises(InvalidParameter):
        build_spec(make_input(rootfs, ipc_mode="container:foo"))


def test_build_spec_resources(rootfs: Path) -> None:
    spec = build_spec(make_input(
        rootfs, memory=64 << 20, memory_swap=128 << 20, memory_reservation=32 << 20,
        nano_cpus=1_500_000_000, cpu_shares=512, cpuset_cpus="0-1", cpuset_mems="0",
        pids_limit=100, blkio_weight=300, oom_kill_disable=True))
    r = spec["linux"]["resources"]
    assert r["memory"] == {"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20,
                           "disableOOMKiller": True}
    assert r["cpu"] == {"shares": 512, "cpus": "0-1", "mems": "0", "period": 100000,
                        "quota": 150000}
    assert r["pids"] == {"limit": 100}
    assert r["blockIO"] == {"weight": 300}
    r = build_spec(make_input(rootfs, cpu_period=50000, cpu_quota=25000, pids_limit=0))["linux"]["resources"]
    assert r["cpu"] == {"period": 50000, "quota": 25000}
    assert r["pids"] == {"limit": -1}
    assert "memory" not in r


def test_build_spec_rlimits_clamped(rootfs: Path) -> None:
    spec = build_spec(make_input(
        rootfs, ulimits=[Ulimit("nofile", 100000, 1048576), Ulimit("core", -1, -1)],
        default_ulimits=[Ulimit("nofile", 1, 1), Ulimit("nproc", 10, 20)]))
    assert spec["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 20000, "soft": 20000},
        {"type": "RLIMIT_CORE", "hard": RLIM_INFINITY, "soft": RLIM_INFINITY},
        {"type": "RLIMIT_NPROC", "hard": 20, "soft": 10},
    ]
    with pytest.raises(InvalidParameter, match="invalid ulimit type"):
        build_spec(make_input(rootfs, ulimits=[Ulimit("bogus", 1, 1)]))
    with pytest.raises(InvalidParameter, match="soft limit"):
        build_spec(make_input(rootfs, ulimits=[Ulimit("nofile", 10, 5)]))


def test_build_spec_security(rootfs: Path) -> None:
    spec = build_spec(make_input(rootfs, security_opt=["no-new-privileges"]))
    assert spec["process"]["noNewPrivileges"] is True
    spec = build_spec(make_input(rootfs, daemon_no_new_privileges=True))
    assert spec["process"]["noNewPrivileges"] is True
    spec = build_spec(make_input(rootfs, daemon_no_new_privileges=True,
                                 security_opt=["no-new-privileges=false"]))
    assert spec["process"]["noNewPrivileges"] is False
    assert "seccomp" not in build_spec(make_input(rootfs, security_opt=["seccomp=unconfined"]))["linux"]
    assert "seccomp" not in build_spec(make_input(rootfs, seccomp_profile="unconfined"))["linux"]
    custom = json.dumps({"defaultAction": "SCMP_ACT_LOG", "syscalls": []})
    spec = build_spec(make_input(rootfs, seccomp_profile=custom))
    assert spec["linux"]["seccomp"] == {"defaultAction": "SCMP_ACT_LOG", "syscalls": []}
    spec = build_spec(make_input(rootfs, seccomp_profile=custom,
                                 security_opt=["seccomp=builtin"]))
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    # cap-dependent seccomp rules follow --cap-add
    spec = build_spec(make_input(rootfs, cap_add=["SYS_ADMIN"]))
    assert "mount" in _names(spec["linux"]["seccomp"])
    with pytest.raises(InvalidParameter):
        build_spec(make_input(rootfs, security_opt=["nope=1"]))


def test_build_spec_privileged(rootfs: Path) -> None:
    spec = build_spec(make_input(rootfs, privileged=True))
    p, lx = spec["process"], spec["linux"]
    assert p["capabilities"]["bounding"] == HOST_CAPS_NO_SYS_RESOURCE
    assert "seccomp" not in lx
    assert "maskedPaths" not in lx and "readonlyPaths" not in lx
    assert lx["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    sysfs = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    cgroup = next(m for m in spec["mounts"] if m["destination"] == "/sys/fs/cgroup")
    assert "ro" not in sysfs["options"] and "ro" not in cgroup["options"]
    assert any(d["path"] == "/dev/null" for d in lx.get("devices", [])) or not os.path.exists("/dev/null")
    # A custom container profile still applies to privileged containers.
    custom = json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []})
    spec = build_spec(make_input(rootfs, privileged=True, security_opt=[f"seccomp={custom}"]))
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ALLOW"


def test_build_spec_path_overrides(rootfs: Path) -> None:
    spec = build_spec(make_input(rootfs, masked_paths=[], readonly_paths=["/proc/sys"]))
    assert "maskedPaths" not in spec["linux"]
    assert spec["linux"]["readonlyPaths"] == ["/proc/sys"]


def test_build_spec_mounts(rootfs: Path) -> None:
    mounts = [
        parse_bind("/h/b:/data/sub:ro"),
        parse_bind("/h/a:/data"),
        MountSpec("/dev/shm", "/h/shm", "bind", ["rbind"]),
        parse_tmpfs("/run", "size=1m"),
    ]
    spec = build_spec(make_input(rootfs, mounts=mounts, init=True, readonly_rootfs=True,
                                 ipc_mode="none"))
    dests = [m["destination"] for m in spec["mounts"]]
    assert dests == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue",
                     INIT_PATH_IN_CONTAINER, "/data", "/run", "/data/sub", "/dev/shm"]
    by_dest = {m["destination"]: m for m in spec["mounts"]}
    assert by_dest["/dev/shm"]["source"] == "/h/shm"
    assert by_dest[INIT_PATH_IN_CONTAINER] == {
        "destination": INIT_PATH_IN_CONTAINER, "type": "bind", "source": "/usr/bin/tini-static",
        "options": ["bind", "ro"]}
    assert by_dest["/data"]["options"] == ["rbind", "rprivate"]  # user mounts keep their mode
    assert by_dest["/dev/mqueue"]["options"] == ["nosuid", "noexec", "nodev"]
    assert spec["process"]["args"] == [INIT_PATH_IN_CONTAINER, "--", "/bin/sh"]
    assert spec["root"]["readonly"] is True
    with pytest.raises(InvalidParameter, match="not resolved"):
        build_spec(make_input(rootfs, mounts=[parse_bind("vol:/x")]))


def test_build_spec_user_dev_mount_hides_dev_defaults(rootfs: Path) -> None:
    spec = build_spec(make_input(rootfs, mounts=[MountSpec("/dev", "/h/dev", "bind", ["rbind"])]))
    dests = [m["destination"] for m in spec["mounts"]]
    assert dests == ["/proc", "/sys", "/sys/fs/cgroup", "/dev"]


def test_build_spec_init_skipped_with_host_pid(rootfs: Path) -> None:
    spec = build_spec(make_input(rootfs, init=True, pid_mode="host"))
    assert spec["process"]["args"] == ["/bin/sh"]


def test_build_spec_sysctls_and_domainname(rootfs: Path) -> None:
    spec = build_spec(make_input(rootfs, domainname="example.org",
                                 sysctls={"net.ipv4.ip_unprivileged_port_start": "1024"}))
    assert spec["linux"]["sysctl"] == {
        "net.ipv4.ip_unprivileged_port_start": "1024",
        "net.ipv4.ping_group_range": "0 2147483647",
        "kernel.domainname": "example.org",
    }


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_build_spec_devices(rootfs: Path) -> None:
    spec = build_spec(make_input(rootfs, devices=[DeviceSpec("/dev/null", "/dev/mynull", "rw")]))
    dev = spec["linux"]["devices"][0]
    assert (dev["path"], dev["type"], dev["major"], dev["minor"]) == ("/dev/mynull", "c", 1, 3)
    assert spec["linux"]["resources"]["devices"][-1] == {
        "allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}
    with pytest.raises(InvalidParameter, match="error gathering device information"):
        build_spec(make_input(rootfs, devices=[DeviceSpec("/nonexistent/dev")]))
    with pytest.raises(InvalidParameter):
        build_spec(make_input(rootfs, devices=[DeviceSpec("/dev/null", "", "rwx")]))


# ---------------------------------------------------------------- host facts


def test_host_facts_probed_once_and_frozen() -> None:
    import dataclasses

    from pydockerd.runtime.host import host_facts
    facts = host_facts()
    assert host_facts() is facts
    assert set(facts.capabilities) <= set(caps.KNOWN_CAPABILITIES)
    assert "nofile" in facts.rlimits and all(v >= 0 for v in facts.rlimits.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        facts.cgroup_v2 = not facts.cgroup_v2  # type: ignore[misc]


def test_spec_follows_given_host_facts(rootfs: Path) -> None:
    v1 = HostFacts(("CAP_CHOWN", "CAP_KILL"), {"nofile": 100}, cgroup_v2=False)
    spec = build_spec(make_input(rootfs, host=v1, privileged=True,
                                 ulimits=[Ulimit("nofile", 50, 1000)]))
    assert spec["process"]["capabilities"]["bounding"] == ["CAP_CHOWN", "CAP_KILL"]
    assert spec["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 100, "soft": 50}]
    assert not any(n["type"] == "cgroup" for n in spec["linux"]["namespaces"])
