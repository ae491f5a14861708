"""A container's upper dir as a layer tar: overlay whiteouts back to AUFS form."""
from __future__ import annotations

import io
import os
import stat
import tarfile

from pydockerd.images.difftar import write_diff_tar
from pydockerd.images.tarsafe import unpack_layer


def test_whiteouts_opaque_and_hardlinks(tmp_path):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "new").write_text("n")
    os.link(upper / "etc" / "new", upper / "etc" / "again")
    os.mknod(upper / "etc" / "gone", stat.S_IFCHR | 0o600, 0)
    (upper / "opq").mkdir()
    os.setxattr(upper / "opq", "trusted.overlay.opaque", b"y")
    os.setxattr(upper / "opq", "trusted.overlay.origin", b"x")
    buf = io.BytesIO()
    write_diff_tar(str(upper), buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        members = {m.name: m for m in tar}
    assert "etc/.wh.gone" in members and members["etc/.wh.gone"].isfile()
    assert "opq/.wh..wh..opq" in members
    assert members["etc/new"].islnk() or members["etc/again"].islnk()
    assert not any("trusted.overlay" in k for m in members.values() for k in m.pax_headers)
    # and it unpacks back into the overlay form
    out = tmp_path / "diff"
    out.mkdir()
    unpack_layer(io.BytesIO(buf.getvalue()), str(out))
    st = os.lstat(out / "etc" / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(out / "opq", "trusted.overlay.opaque") == b"y"
