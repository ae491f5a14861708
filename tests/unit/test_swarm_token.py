"""Join tokens and the root-CA digest check (no root, no daemon, no manager)."""
from __future__ import annotations

import hashlib

import pytest

from pydockerd.errors import InvalidParameter
from pydockerd.swarm.addrs import split_addr
from pydockerd.swarm.jointoken import ca_matches, digest_token_part, parse_token

CA = b"-----BEGIN CERTIFICATE-----\nMIIBazCCARCgAwIBAgIUQ...\n-----END CERTIFICATE-----\n"
SECRET = "1awxwuwd3z9j1z3puu7rcgdbx"


def token_for(ca: bytes, secret: str = SECRET, prefix: str = "SWMTKN-1") -> str:
    return f"{prefix}-{digest_token_part(ca)}-{secret}"


def test_digest_is_sha256_in_base36_padded_to_50():
    part = digest_token_part(CA)
    assert len(part) == 50
    assert int(part, 36) == int(hashlib.sha256(CA).hexdigest(), 16)
    assert all(len(digest_token_part(bytes([i]))) == 50 for i in range(64))


def test_a_real_shaped_token_parses():
    tok = parse_token(token_for(CA))
    assert tok.digest == hashlib.sha256(CA).hexdigest()
    assert tok.raw == token_for(CA) and not tok.fips


def test_ca_check_accepts_only_the_tokens_bundle():
    tok = parse_token(token_for(CA))
    assert ca_matches(tok, CA)
    assert not ca_matches(tok, CA + b"\n")
    assert not ca_matches(tok, b"another CA")


def test_manager_tokens_parse_too():
    # worker and manager tokens differ only by their secret
    assert parse_token(token_for(CA, "0" * 25)).digest == hashlib.sha256(CA).hexdigest()


@pytest.mark.parametrize("token", [
    "", "foo", "SWMTKN", "SWMTKN-1", "SWMTKN-1-abc-def",
    "SWMTKN-3-" + "a" * 50 + "-" + "b" * 25,            # unknown version
    "SWMTKM-1-" + "a" * 50 + "-" + "b" * 25,            # not SWMTKN
    "SWMTKN-1-" + "a" * 49 + "-" + "b" * 25,            # digest too short
    "SWMTKN-1-" + "a" * 50 + "-" + "b" * 24,            # secret too short
    "SWMTKN-1-" + "a" * 49 + "!-" + "b" * 25,           # not base 36
    "SWMTKN-1-" + "z" * 50 + "-" + "b" * 25,            # more than 256 bits
    "SWMTKN-1-" + "a" * 50 + "-" + "b" * 25 + "-x",     # five parts but v1
    "SWMTKN-2-7-" + "a" * 50 + "-" + "b" * 25,          # v2 with a bad fips flag
])
def test_malformed_tokens_are_refused_as_dockerd_does(token):
    with pytest.raises(InvalidParameter) as e:
        parse_token(token)
    assert e.value.message == "invalid join token"


def test_v2_tokens():
    digest, secret = digest_token_part(CA), SECRET
    tok = parse_token(f"SWMTKN-2-0-{digest}-{secret}")
    assert ca_matches(tok, CA) and not tok.fips
    with pytest.raises(InvalidParameter) as e:
        parse_token(f"SWMTKN-2-1-{digest}-{secret}")
    assert "requires FIPS mode" in e.value.message and "pydockerd" in e.value.message


@pytest.mark.parametrize("addr, expected", [
    ("127.0.0.1:2377", ("127.0.0.1", 2377)), ("10.0.0.1", ("10.0.0.1", 2377)),
    ("[::1]:4000", ("::1", 4000)), ("::1", ("::1", 2377)),
    ("manager-1.example:2377", ("manager-1.example", 2377)),
])
def test_manager_addresses(addr, expected):
    assert split_addr(addr) == expected


@pytest.mark.parametrize("addr", ["", "h:0", "h:70000", "h:x", "a\x00b:1", "x" * 300,
                                  "-bad-:1", "[::1]x"])
def test_bad_manager_addresses(addr):
    with pytest.raises(InvalidParameter) as e:
        split_addr(addr)
    assert e.value.message.startswith("invalid remoteAddr")
