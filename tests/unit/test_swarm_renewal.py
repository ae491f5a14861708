"""Node certificate renewal (timing, triggers, retries), the identity's atomic
replacement under <data-root>/swarm, chains across a root rotation, and what
the agent does with a session's node, RootCA and desired role (no root, no
daemon, no manager)."""
from __future__ import annotations

import asyncio
import os
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pydockerd.swarm.certs import (CertificateError, check_pair, issuer_info, new_key,
                                    trust_bundle, validity)
from pydockerd.swarm.identity import Identity, IdentityStore
from pydockerd.swarm.renewal import Renewer, backoff, renewal_delay

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
PEM = serialization.Encoding.PEM


# ------------------------------------------------------------------ timing

def test_renewal_is_between_50_and_80_percent_of_the_validity():
    rng = random.Random(7)
    days90 = T0 + timedelta(days=90)
    delays = [renewal_delay(T0, days90, T0, rng) for _ in range(500)]
    assert min(delays) >= 45 * 86400 and max(delays) < 72 * 86400
    assert max(delays) - min(delays) > 20 * 86400        # spread, not one instant
    assert all(d % 60 == 0 for d in delays)               # whole minutes, as SwarmKit


def test_renewal_of_a_short_certificate_counts_from_its_backdated_start():
    # `swarm update --cert-expiry 1h`: valid from an hour ago (backdated) to in an hour
    now = T0 + timedelta(hours=1)
    delays = [renewal_delay(T0, T0 + timedelta(hours=2), now, random.Random(i))
              for i in range(200)]
    assert min(delays) >= 0 and max(delays) < 36 * 60


def test_renewal_point_passed_means_now():
    assert renewal_delay(T0, T0 + timedelta(days=1), T0 + timedelta(days=2),
                         random.Random(1)) == 0


def test_retries_back_off():
    assert [backoff(n) for n in range(5)] == [0, 5, 10, 20, 40]
    assert backoff(30) == 3600


class Clock:
    def __init__(self, now: datetime) -> None:
        self.t = now

    def __call__(self) -> datetime:
        return self.t


def run_renewer(renewer: Renewer, until, timeout: float = 5.0) -> None:
    async def main() -> None:
        task = asyncio.get_running_loop().create_task(renewer.run())
        try:
            deadline = asyncio.get_running_loop().time() + timeout
            while not until():
                assert asyncio.get_running_loop().time() < deadline, "timed out"
                assert not task.done(), task
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    asyncio.run(main())


def test_due_certificate_is_renewed_and_the_next_one_waits():
    clock = Clock(T0 + timedelta(minutes=80))
    validities = [(T0, T0 + timedelta(minutes=100))]
    calls = []

    async def renew() -> None:
        calls.append(clock())
        validities.append((clock(), clock() + timedelta(days=90)))

    r = Renewer(lambda: validities[-1], renew, now=clock)
    run_renewer(r, lambda: r.next_at is not None and len(calls) == 1
                and r.next_at > clock() + timedelta(days=40))
    assert r.renewals == 1


def test_not_yet_due_is_not_renewed_until_the_manager_asks():
    clock = Clock(T0 + timedelta(minutes=10))
    calls = []

    async def renew() -> None:
        calls.append(1)

    r = Renewer(lambda: (T0, T0 + timedelta(days=90)), renew, now=clock, forced_delay=0)

    async def main() -> None:
        task = asyncio.get_running_loop().create_task(r.run())
        await asyncio.sleep(0.2)
        assert calls == []
        r.request()
        r.request()                 # several requests, one renewal
        for _ in range(100):
            await asyncio.sleep(0.01)
            if calls:
                break
        await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    asyncio.run(main())
    assert calls == [1]


def test_expired_certificate_renews_at_once_and_failures_are_retried():
    clock = Clock(T0 + timedelta(days=100))
    attempts = []

    async def renew() -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("manager unreachable")

    validities = [(T0, T0 + timedelta(days=90))]

    async def renew_then_valid() -> None:
        await renew()
        validities.append((clock(), clock() + timedelta(days=90)))

    r = Renewer(lambda: validities[-1], renew_then_valid, now=clock, backoff_base=0.01)
    run_renewer(r, lambda: r.renewals == 1 and r.next_at is not None
                and r.next_at > clock() + timedelta(days=40))
    assert len(attempts) == 3


# ------------------------------------------------------------------ certificates

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key, issuer: str, issuer_key, ca: bool) -> x509.Certificate:
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(T0).not_valid_after(T0 + timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))


class Swarm:
    """An old root, a new root (same subject, as SwarmKit's `swarm-ca`), the new
    root cross-signed by the old one, and a node key."""

    def __init__(self) -> None:
        self.old_key = ec.generate_private_key(ec.SECP256R1())
        self.new_key = ec.generate_private_key(ec.SECP256R1())
        self.old = _cert("swarm-ca", self.old_key, "swarm-ca", self.old_key, True)
        self.new = _cert("swarm-ca", self.new_key, "swarm-ca", self.new_key, True)
        self.cross = _cert("swarm-ca", self.new_key, "swarm-ca", self.old_key, True)
        self.node_key = new_key()

    def leaf(self, signer, extra: list[x509.Certificate] = ()) -> bytes:
        key = serialization.load_pem_private_key(self.node_key, None)
        leaf = _cert("node1", key, "swarm-ca", signer, False)
        return b"".join(c.public_bytes(PEM) for c in [leaf, *extra])


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


def test_a_certificate_of_the_rotated_root_chains_through_the_cross_signed_one():
    s = Swarm()
    old_root, new_root = s.old.public_bytes(PEM), s.new.public_bytes(PEM)
    before = s.leaf(s.old_key)
    check_pair(s.node_key, before, old_root)
    assert issuer_info(before, old_root) == (s.old.subject.public_bytes(), _spki(s.old))
    with pytest.raises(CertificateError):
        check_pair(s.node_key, before, new_root)       # not trusted by the new root
    during = s.leaf(s.new_key, [s.cross])
    check_pair(s.node_key, during, old_root)           # the old root still trusts it
    check_pair(s.node_key, during, new_root)           # and so will the new one
    # the issuer the manager waits for: the new CA's subject and key
    assert issuer_info(during, old_root) == (s.new.subject.public_bytes(), _spki(s.new))
    assert issuer_info(during, new_root) == (s.new.subject.public_bytes(), _spki(s.new))
    with pytest.raises(CertificateError):
        check_pair(new_key(), during, old_root)        # another key's certificate
    # what a connection trusts meanwhile: the old root and the cross-signed new one
    assert trust_bundle(before, old_root) == old_root
    assert trust_bundle(during, old_root) == old_root + s.cross.public_bytes(PEM)
    assert trust_bundle(during, new_root) == new_root
    nb, na = validity(during)
    assert (nb, na) == (T0, T0 + timedelta(days=90))


# ------------------------------------------------------------------ the store

def _ident(s: Swarm, cert: bytes, root: bytes, key: bytes | None = None) -> Identity:
    return Identity("node1", key or s.node_key, cert, root, ["127.0.0.1:2377"])


def test_a_renewed_identity_replaces_the_old_one_as_a_whole(tmp_path: Path):
    s = Swarm()
    store = IdentityStore(str(tmp_path))
    first = _ident(s, s.leaf(s.old_key), s.old.public_bytes(PEM))
    store.save(first)
    certs = tmp_path / "swarm" / "certificates"
    assert certs.is_symlink()
    assert oct(os.stat(certs / "key.pem").st_mode & 0o777) == "0o600"
    assert oct(os.stat(tmp_path / "swarm").st_mode & 0o777) == "0o700"
    assert store.load() == first
    renewed = _ident(s, s.leaf(s.new_key, [s.cross]), first.root_ca, new_key())
    store.save(renewed)
    assert store.load() == renewed
    assert sorted(p.name for p in (tmp_path / "swarm").iterdir()) == \
        ["certificates", os.readlink(certs), "state.json"]


def test_a_crash_while_writing_a_renewal_leaves_the_previous_identity(tmp_path: Path):
    s = Swarm()
    store = IdentityStore(str(tmp_path))
    first = _ident(s, s.leaf(s.old_key), s.old.public_bytes(PEM))
    store.save(first)
    # killed after writing the new key only: the symlink was not swapped yet
    half = tmp_path / "swarm" / "certificates.9"
    half.mkdir()
    (half / "key.pem").write_bytes(new_key())
    assert store.load() == first
    check_pair(store.load().key, store.load().cert, store.load().root_ca)
    renewed = _ident(s, s.leaf(s.new_key, [s.cross]), first.root_ca, new_key())
    store.save(renewed)
    assert store.load() == renewed and not half.exists()


def test_an_identity_stored_in_the_first_flat_layout_loads_and_moves(tmp_path: Path):
    s = Swarm()
    first = _ident(s, s.leaf(s.old_key), s.old.public_bytes(PEM))
    flat = tmp_path / "swarm"
    flat.mkdir()
    for name, data in (("key.pem", first.key), ("cert.pem", first.cert),
                       ("ca.pem", first.root_ca)):
        (flat / name).write_bytes(data)
    (flat / "state.json").write_text('{"NodeID": "node1", "Managers": ["127.0.0.1:2377"]}')
    store = IdentityStore(str(tmp_path))
    assert store.load() == first
    first.root_ca = s.new.public_bytes(PEM)
    store.save(first)
    assert store.load() == first and not (flat / "key.pem").exists()


# ------------------------------------------------------------------ the agent

def test_session_messages_ask_for_renewal_report_promotion_and_trust_a_new_root():
    from pydockerd.swarm.agent import Agent
    from pydockerd.swarm.proto import swarmkit_pb2 as pb
    s = Swarm()
    during = s.leaf(s.new_key, [s.cross])
    saved: list[Identity] = []

    async def main() -> None:
        agent = Agent(_ident(s, during, s.old.public_bytes(PEM)), [], saved.append)
        msg = pb.SessionMessage(session_id="x", RootCA=s.old.public_bytes(PEM))
        msg.node.spec.desired_role = pb.MANAGER
        msg.node.certificate.status.state = pb.IssuanceStatus.ROTATE
        agent._apply(msg)
        assert agent.renewer._asked.is_set()
        assert "promoted" in agent.warning and "docker node rm node1" in agent.warning
        assert not saved and not agent._new_session.is_set()
        # an unrelated root is refused; the rotated root is trusted, stored, and
        # a new session reports it
        agent._apply(pb.SessionMessage(session_id="x",
                                       RootCA=Swarm().new.public_bytes(PEM)))
        assert agent.ident.root_ca == s.old.public_bytes(PEM) and not saved
        msg = pb.SessionMessage(session_id="x", RootCA=s.new.public_bytes(PEM))
        msg.node.spec.desired_role = pb.WORKER
        agent._apply(msg)
        assert agent.ident.root_ca == s.new.public_bytes(PEM)
        assert saved and saved[-1].root_ca == s.new.public_bytes(PEM)
        assert agent._new_session.is_set() and agent.warning == ""
    asyncio.run(main())
