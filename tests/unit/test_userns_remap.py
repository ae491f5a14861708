"""--userns-remap's pure parts: id maps, subuid files, the spec, layer ids both ways."""
from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from pydockerd.errors import InvalidParameter
from pydockerd.images.difftar import write_diff_tar
from pydockerd.images.tarsafe import unpack_layer
from pydockerd.remap import next_range_start, parse_remap, parse_subid_file
from pydockerd.runtime.host import HostFacts
from pydockerd.runtime.oci_spec import build_spec
from pydockerd.runtime.spec_input import SpecInput
from pydockerd.runtime.users import ExecUser
from pydockerd.util.idmap import IdMap, ranges_from_subids

IDS = IdMap(ranges_from_subids([(100000, 65536)]), ranges_from_subids([(200000, 65536)]))


def test_idmap_translates_both_ways() -> None:
    assert IDS.root() == (100000, 200000)
    assert IDS.to_host(5, 6) == (100005, 200006)
    assert IDS.to_container(100005, 200006) == (5, 6)
    assert IDS.to_container(0, 7) == (65534, 65534)     # unmapped: the overflow id
    with pytest.raises(InvalidParameter, match="Container ID 65536 cannot be mapped"):
        IDS.uid_to_host(65536)
    assert IdMap().to_host(5, 6) == (5, 6) and not IdMap().remapped


def test_several_ranges_are_laid_end_to_end() -> None:
    ids = IdMap(ranges_from_subids([(100000, 10), (300000, 5)]),
                ranges_from_subids([(100000, 15)]))
    assert ids.uid_to_host(12) == 300002
    assert ids.oci()[0] == [{"containerID": 0, "hostID": 100000, "size": 10},
                            {"containerID": 10, "hostID": 300000, "size": 5}]
    assert ids.proc_map() == "0 100000 10\n10 300000 5\n"


def test_subid_files_and_next_range(tmp_path: Path) -> None:
    f = tmp_path / "subuid"
    f.write_text("alice:100000:65536\n# c\nbob:165536:65536\nalice:400000:10\n")
    assert parse_subid_file(str(f), "alice") == [(100000, 65536), (400000, 10)]
    assert parse_subid_file(str(f), "nobody") == []
    assert parse_subid_file(str(tmp_path / "missing"), None) == []
    # moby's findNextRangeStart: past every range the default one would touch
    assert next_range_start([]) == 100000
    assert next_range_start(parse_subid_file(str(f), None)) == 231072
    assert next_range_start([(500000, 65536)]) == 100000
    f.write_text("broken line\n")
    with pytest.raises(InvalidParameter, match="Format not correct"):
        parse_subid_file(str(f), "x")


def test_parse_remap() -> None:
    assert parse_remap("default") == ("dockremap", "dockremap")
    assert parse_remap("bob") == ("bob", "bob")
    assert parse_remap("bob:staff") == ("bob", "staff")
    with pytest.raises(InvalidParameter):
        parse_remap(":staff")


def _input(tmp_path: Path, **kw: object) -> SpecInput:
    uids, gids = IDS.oci()
    base: dict[str, object] = dict(
        rootfs=str(tmp_path), args=["/bin/sh"], exec_user=ExecUser(0, 0, ()),
        host=HostFacts(("CAP_CHOWN",), {}, cgroup_v2=False),
        uid_mappings=uids, gid_mappings=gids)
    base.update(kw)
    return SpecInput(**base)  # type: ignore[arg-type]


def test_spec_has_a_user_namespace_with_the_mappings(tmp_path: Path) -> None:
    spec = build_spec(_input(tmp_path, netns_path="/run/x/netns/c",
                             userns_path="/run/x/userns/c"))
    assert {"type": "user", "path": "/run/x/userns/c"} in spec["linux"]["namespaces"]
    assert spec["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 100000,
                                             "size": 65536}]
    assert spec["linux"]["gidMappings"][0]["hostID"] == 200000
    # as dockerd: ip_unprivileged_port_start yes, ping_group_range left alone
    assert spec["linux"]["sysctl"] == {"net.ipv4.ip_unprivileged_port_start": "0"}
    fresh = build_spec(_input(tmp_path, netns_path=""))
    assert {"type": "user"} in fresh["linux"]["namespaces"]
    plain = build_spec(_input(tmp_path, uid_mappings=[], gid_mappings=[]))
    assert "uidMappings" not in plain["linux"]
    assert all(ns["type"] != "user" for ns in plain["linux"]["namespaces"])
    assert plain["linux"]["sysctl"]["net.ipv4.ping_group_range"] == "0 2147483647"


def _layer(entries: list[tuple[str, int, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, uid, gid in entries:
            ti = tarfile.TarInfo(name)
            ti.uid, ti.gid = uid, gid
            if name.endswith("/"):
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            else:
                ti.size = 2
                t.addfile(ti, io.BytesIO(b"x\n"))
    return buf.getvalue()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to other ids needs root")
def test_layer_ids_are_mapped_in_and_out(tmp_path: Path) -> None:
    root = tmp_path / "diff"
    root.mkdir()
    res = unpack_layer(io.BytesIO(_layer([("etc/", 0, 0), ("etc/f", 5, 6), ("implicit/g", 0, 0)])),
                       str(root), record=True, ids=IDS)
    assert res.split is not None
    st = os.lstat(root / "etc" / "f")
    assert (st.st_uid, st.st_gid) == (100005, 200006)
    st = os.lstat(root / "implicit")          # a parent the tar does not name
    assert (st.st_uid, st.st_gid) == (100000, 200000)
    out = io.BytesIO()
    write_diff_tar(str(root), out, IDS)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as t:
        owners = {m.name: (m.uid, m.gid) for m in t.getmembers()}
    assert owners["etc/f"] == (5, 6) and owners["implicit"] == (0, 0)
    (tmp_path / "d2").mkdir()
    with pytest.raises(InvalidParameter, match="cannot be mapped"):
        unpack_layer(io.BytesIO(_layer([("big", 70000, 0)])), str(tmp_path / "d2"), ids=IDS)
