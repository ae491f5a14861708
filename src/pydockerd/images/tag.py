"""`docker tag`."""
from __future__ import annotations

from ..errors import InvalidParameter
from ..util.ids import now_rfc3339
from .references import repo_tag_reference
from .state import ImageState


def tag(st: ImageState, source_ref: str, repo: str, tag: str | None = None) -> str:
    """Tag an image; returns the familiar new reference (busybox:mine)."""
    ref = repo_tag_reference(repo, tag)
    if ref.familiar_name() == "sha256":
        raise InvalidParameter(
            "refusing to create an ambiguous tag using digest algorithm as name")
    with st.lock:
        img = st.resolve(source_ref)
        with st.db.transaction():
            st.images.put_ref(ref, img.id)
            stored = st.images.get(img.id)
            if stored:
                stored.last_tag_time = now_rfc3339()
                st.images.put(stored)
    st.event("tag", img, ref.familiar())
    return ref.familiar()
