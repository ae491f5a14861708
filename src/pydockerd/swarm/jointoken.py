"""Swarm join tokens (SWMTKN-1-<root CA digest>-<secret>) and the root-CA check.

The digest is the SHA-256 of the root CA bundle the manager serves, written in
base 36 and left-padded with 0 to 50 characters; the secret is 16 random bytes
in base 36, padded to 25. A node trusts nothing from a manager before the
bundle it fetched hashes to the token's digest. SWMTKN-2-<fips>-... tokens are
version 2, whose fips flag 1 demands a FIPS-only cluster: pydockerd's TLS is
not FIPS-validated, so it refuses them (as a non-FIPS dockerd refuses a
mandatory-FIPS cluster)."""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from ..errors import InvalidParameter

INVALID = "invalid join token"
DIGEST_LEN = 50
SECRET_LEN = 25


@dataclass(frozen=True)
class JoinToken:
    raw: str            # the whole string: what the manager's CA compares
    digest: str         # 64 hex characters: sha256 of the root CA bundle
    fips: bool = False


def _base36(text: str, length: int) -> int:
    if len(text) != length or not text.isalnum() or not text.isascii():
        raise InvalidParameter(INVALID)
    return int(text.lower(), 36)


def parse_token(token: str) -> JoinToken:
    """The parts of a join token; InvalidParameter for anything else."""
    parts = token.split("-")
    if parts[0] != "SWMTKN" or len(parts) not in (4, 5):
        raise InvalidParameter(INVALID)
    fips = False
    if len(parts) == 5:
        if parts[1] != "2" or parts[2] not in ("0", "1"):
            raise InvalidParameter(INVALID)
        fips = parts[2] == "1"
        digest_part, secret = parts[3], parts[4]
    elif parts[1] == "1":
        digest_part, secret = parts[2], parts[3]
    else:
        raise InvalidParameter(INVALID)
    number = _base36(digest_part, DIGEST_LEN)
    _base36(secret, SECRET_LEN)
    if number >= 1 << 256:
        raise InvalidParameter(INVALID)
    if fips:
        raise InvalidParameter("the swarm requires FIPS mode (a SWMTKN-2-1 join token), "
                               "which pydockerd does not provide")
    return JoinToken(token, f"{number:064x}", fips)


def digest_token_part(ca_bundle: bytes) -> str:
    """The digest part of a token for this root CA bundle (for tests and messages)."""
    n = int.from_bytes(hashlib.sha256(ca_bundle).digest(), "big")
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = "0123456789abcdefghijklmnopqrstuvwxyz"[r] + out
    return out.rjust(DIGEST_LEN, "0")


def ca_matches(token: JoinToken, ca_bundle: bytes) -> bool:
    """True when the root CA bundle fetched from a manager is the token's."""
    return hmac.compare_digest(hashlib.sha256(ca_bundle).hexdigest(), token.digest)
