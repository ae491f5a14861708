"""Image references parsed like Docker's distribution/reference package.

`busybox` normalises to `docker.io/library/busybox` (tag `latest` added where
a tag is needed); `familiar()` gives back the short form Docker shows in
RepoTags (`busybox:latest`). References are values: frozen dataclasses.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"

REFERENCE_RE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
TAG_RE = re.compile(rf"^{_TAG}$")
HEX64_RE = re.compile(r"^[a-f0-9]{64}$")


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalised reference: name always carries its domain."""

    name: str                 # docker.io/library/busybox, host:5000/x/y
    tag: str = ""
    digest: str = ""          # sha256:<hex>

    @property
    def domain(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def path(self) -> str:
        return self.name.split("/", 1)[1]

    def familiar_name(self) -> str:
        domain, path = self.domain, self.path
        if domain != DEFAULT_DOMAIN:
            return self.name
        if path.startswith(OFFICIAL_PREFIX) and "/" not in path[len(OFFICIAL_PREFIX):]:
            return path[len(OFFICIAL_PREFIX):]
        return path

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def familiar(self) -> str:
        return self.familiar_name() + self._suffix()

    def __str__(self) -> str:
        return self.name + self._suffix()

    def with_default_tag(self) -> Reference:
        """Docker's TagNameOnly: add :latest when there is neither tag nor digest."""
        if self.tag or self.digest:
            return self
        return Reference(self.name, DEFAULT_TAG)

    def with_tag(self, tag: str) -> Reference:
        if not TAG_RE.match(tag):
            raise InvalidParameter("invalid tag format")
        return Reference(self.name, tag)

    @property
    def is_digested(self) -> bool:
        return bool(self.digest)


def _split_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    first = name[:i]
    if i == -1 or (not any(c in first for c in ".:") and first != "localhost"
                   and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, name[i + 1:]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def parse_normalized(s: str) -> Reference:
    """Docker's ParseNormalizedNamed; raises InvalidParameter with Docker's messages."""
    if HEX64_RE.match(s):
        raise InvalidParameter(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_domain(s)
    remote = remainder.split(":", 1)[0] if "@" not in remainder else \
        remainder.split("@", 1)[0].split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidParameter(
            f"invalid reference format: repository name ({remote}) must be lowercase")
    full = f"{domain}/{remainder}"
    m = REFERENCE_RE.match(full)
    if not m:
        if not s:
            raise InvalidParameter("invalid reference format: repository name must have "
                                   "at least one component")
        raise InvalidParameter("invalid reference format")
    name, tag, digest = m.group(1), m.group(2) or "", m.group(3) or ""
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidParameter(
            f"invalid reference format: repository name must not be more than "
            f"{NAME_TOTAL_LENGTH_MAX} characters")
    if digest:
        algo, _, hexpart = digest.partition(":")
        if algo == "sha256" and len(hexpart) != 64:
            raise InvalidParameter("invalid checksum digest length")
    return Reference(name, tag, digest)


def try_parse(s: str) -> Reference | None:
    try:
        return parse_normalized(s)
    except InvalidParameter:
        return None


def repo_tag_reference(repo: str, tag: str | None) -> Reference:
    """The reference POST /images/{name}/tag and commit create (httputils.RepoTagReference)."""
    ref = parse_normalized(repo)
    if ref.digest:
        raise InvalidParameter("cannot import digest reference")
    if tag:
        return ref.with_tag(tag)
    return ref.with_default_tag()


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Go's path.Match: `*` and `?` never match `/`; [...] classes as in Go."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                raise InvalidParameter(f"invalid reference filter pattern: {pattern}")
            body = pattern[i + 1:j]
            if body.startswith("^"):
                body = "^/" + body[1:]   # negated classes never match '/'
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def familiar_match(pattern: str, ref: Reference) -> bool:
    """reference.FamiliarMatch: the pattern against `name:tag`, then against `name`."""
    rx = _glob_to_regex(pattern)
    return bool(rx.match(ref.familiar()) or rx.match(ref.familiar_name()))
