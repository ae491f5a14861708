"""Registry credentials (X-Registry-Auth, POST /auth bodies) and auth challenges.

Credentials are kept in AuthConfig, whose repr never shows secrets; nothing in
this package logs or puts them into error messages.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any



@dataclass(frozen=True)
class AuthConfig:
    username: str = ""
    password: str = field(default="", repr=False)
    server_address: str = ""
    identity_token: str = field(default="", repr=False)
    registry_token: str = field(default="", repr=False)

    @property
    def has_basic(self) -> bool:
        return bool(self.username or self.password)

    @classmethod
    def from_json(cls, doc: Any) -> AuthConfig:
        if not isinstance(doc, dict):
            return cls()
        low = {str(k).lower(): v for k, v in doc.items()}

        def s(key: str) -> str:
            v = low.get(key)
            return v if isinstance(v, str) else ""
        user, password = s("username"), s("password")
        if not user and s("auth"):              # "auth": base64(user:password)
            try:
                user, _, password = base64.b64decode(s("auth")).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                pass
        return cls(user, password, s("serveraddress"), s("identitytoken"),
                   s("registrytoken"))

    @classmethod
    def from_header(cls, value: str | None) -> AuthConfig:
        """X-Registry-Auth: base64url(JSON). An undecodable header means no credentials,
        as dockerd does (it logs and goes on anonymously)."""
        if not value:
            return cls()
        raw = value.strip()
        try:
            data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
            return cls.from_json(json.loads(data))
        except (binascii.Error, ValueError):
            try:
                return cls.from_json(json.loads(raw))
            except ValueError:
                return cls()


@dataclass(frozen=True)
class Challenge:
    scheme: str                       # "basic" or "bearer"
    params: dict[str, str]


_PARAM_RE = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenges(headers: list[str]) -> list[Challenge]:
    """WWW-Authenticate: Bearer realm="...",service="...",scope="..." / Basic realm=..."""
    out: list[Challenge] = []
    for h in headers:
        scheme, _, rest = h.strip().partition(" ")
        params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
                  for m in _PARAM_RE.finditer(rest)}
        out.append(Challenge(scheme.lower(), params))
    return out
