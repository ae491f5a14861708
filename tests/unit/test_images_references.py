"""Unit tests for image reference parsing (Docker's distribution/reference rules)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

try:
    import pydockerd  # noqa: F401
except ImportError:  # running without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from pydockerd.errors import InvalidParameter
from pydockerd.images.references import (
    Reference,
    familiar_match,
    parse_normalized,
    repo_tag_reference,
)

HEX = "a" * 64


@pytest.mark.parametrize("raw,name,tag,digest,familiar", [
    ("busybox", "docker.io/library/busybox", "", "", "busybox"),
    ("busybox:1.36", "docker.io/library/busybox", "1.36", "", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox", "", "", "busybox"),
    ("docker.io/busybox", "docker.io/library/busybox", "", "", "busybox"),
    ("index.docker.io/library/busybox:x", "docker.io/library/busybox", "x", "", "busybox:x"),
    ("user/app:v1", "docker.io/user/app", "v1", "", "user/app:v1"),
    ("localhost/app", "localhost/app", "", "", "localhost/app"),
    ("host:5000/x/y:tag", "host:5000/x/y", "tag", "", "host:5000/x/y:tag"),
    ("reg.example.com/a/b/c", "reg.example.com/a/b/c", "", "", "reg.example.com/a/b/c"),
    (f"busybox@sha256:{HEX}", "docker.io/library/busybox", "", f"sha256:{HEX}",
     f"busybox@sha256:{HEX}"),
    ("my-app__x/z.y-w", "docker.io/my-app__x/z.y-w", "", "", "my-app__x/z.y-w"),
])
def test_parse_and_familiar(raw: str, name: str, tag: str, digest: str, familiar: str) -> None:
    ref = parse_normalized(raw)
    assert (ref.name, ref.tag, ref.digest) == (name, tag, digest)
    assert ref.familiar() == familiar


def test_default_tag_and_str() -> None:
    ref = parse_normalized("busybox").with_default_tag()
    assert str(ref) == "docker.io/library/busybox:latest"
    assert ref.familiar() == "busybox:latest"
    assert Reference("docker.io/library/a/b", "t").familiar() == "library/a/b:t"


@pytest.mark.parametrize("raw,msg", [
    ("Busybox", "must be lowercase"),
    ("user/App", "must be lowercase"),
    (HEX, "cannot specify 64-byte hexadecimal strings"),
    ("busy box", "invalid reference format"),
    ("a//b", "invalid reference format"),
    ("a:b:c", "invalid reference format"),
    ("-a", "invalid reference format"),
    ("busybox:" + "t" * 129, "invalid reference format"),
    ("", "invalid reference format"),
])
def test_invalid(raw: str, msg: str) -> None:
    with pytest.raises(InvalidParameter, match=msg):
        parse_normalized(raw)


def test_repo_tag_reference() -> None:
    assert repo_tag_reference("x", None).familiar() == "x:latest"
    assert repo_tag_reference("x:old", "new").familiar() == "x:new"
    assert repo_tag_reference("h:5000/x", "v").familiar() == "h:5000/x:v"
    with pytest.raises(InvalidParameter, match="invalid tag format"):
        repo_tag_reference("x", "bad tag")
    with pytest.raises(InvalidParameter, match="digest"):
        repo_tag_reference(f"x@sha256:{HEX}", None)


@pytest.mark.parametrize("pattern,ref,ok", [
    ("busybox", "busybox:latest", True),
    ("busy*", "busybox:latest", True),
    ("busybox:lat*", "busybox:latest", True),
    ("*", "user/app:v1", False),          # * never matches '/'
    ("*/*", "user/app:v1", True),
    ("user/app:v?", "user/app:v1", True),
    ("busybox:1.*", "busybox:latest", False),
])
def test_familiar_match(pattern: str, ref: str, ok: bool) -> None:
    assert familiar_match(pattern, parse_normalized(ref)) is ok
