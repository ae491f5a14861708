"""distribution/endpoints: a plain-http registry endpoint (a mirror, or an insecure
registry's http fallback) carries the TLS settings an https redirect or token realm
from it is fetched with: verified unless the host is insecure (Go's endpoints get
newTLSConfig(host, isSecureIndex(host)) whatever their scheme). No root, no daemon."""
from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest

from pydockerd.config import Config
from pydockerd.distribution import endpoints
from pydockerd.distribution.endpoints import registry_endpoints
from pydockerd.errors import InvalidParameter
from pydockerd.images.references import DEFAULT_DOMAIN


def test_plain_http_endpoints_verify_tls_unless_the_host_is_insecure(tmp_path: Path) -> None:
    mirrors = ("http://10.9.9.9:5000", "http://127.0.0.1:5000")   # 127/8: insecure
    eps = registry_endpoints(Config(registry_mirrors=mirrors, certs_dir=str(tmp_path)),
                             DEFAULT_DOMAIN)
    assert [(e.base, e.tls.verify_mode, e.tls.check_hostname) for e in eps] == [
        ("http://10.9.9.9:5000", ssl.CERT_REQUIRED, True),
        ("http://127.0.0.1:5000", ssl.CERT_NONE, False),
        ("https://registry-1.docker.io", ssl.CERT_REQUIRED, True)]
    marked = Config(registry_mirrors=mirrors[:1], insecure_registries=("10.9.9.0/24",),
                    certs_dir=str(tmp_path))
    assert registry_endpoints(marked, DEFAULT_DOMAIN)[0].tls.verify_mode == ssl.CERT_NONE
    eps = registry_endpoints(marked, "10.9.9.9:5000")
    assert [(e.base, e.tls.verify_mode) for e in eps] == [
        ("https://10.9.9.9:5000", ssl.CERT_NONE), ("http://10.9.9.9:5000", ssl.CERT_NONE)]


def test_a_context_is_kept_per_host_until_its_certs_dir_changes(tmp_path: Path) -> None:
    """Making a context loads the system CA bundle (~20 ms at every pull's start):
    one is kept per certs.d state; a new CA file gives a new one."""
    cfg = Config(certs_dir=str(tmp_path))
    first = registry_endpoints(cfg, "reg.example:5000")[0].tls
    assert registry_endpoints(cfg, "reg.example:5000")[0].tls is first
    d = tmp_path / "reg.example:5000"
    d.mkdir()
    changed = registry_endpoints(cfg, "reg.example:5000")[0].tls
    assert changed is not first
    (tmp_path / "other.example:5000").mkdir()
    other = registry_endpoints(cfg, "other.example:5000")[0].tls
    assert other is not changed and other is not first
    assert registry_endpoints(cfg, "reg.example:5000")[0].tls is changed
    (d / "ca.crt").write_text("not a certificate")
    with pytest.raises(InvalidParameter):                # read again, not the kept one
        registry_endpoints(cfg, "reg.example:5000")



def _system_ca() -> bytes:
    """A PEM CA certificate of the system bundle (no file of the host named)."""
    ders = ssl.create_default_context().get_ca_certs(binary_form=True)
    assert ders
    return ssl.DER_cert_to_PEM_cert(ders[0]).encode()


@pytest.mark.parametrize("how", ["renamed into place", "rewritten in place"])
def test_a_ca_replaced_with_the_same_size_and_mtime_is_read_again(tmp_path: Path,
                                                                    how: str) -> None:
    """cp -p, rsync -a and tar keep a file's mtime: a CA replaced by one of the same
    size must not leave the old one trusted (dockerd reads certs.d at every pull).
    Here the new file is not a certificate: read again, it fails the endpoint."""
    good = _system_ca()
    bad = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n"
    bad += b"\n" * (len(good) - len(bad))                 # the same size
    cfg = Config(certs_dir=str(tmp_path))
    d = tmp_path / "reg.example:5000"
    d.mkdir()
    ca = d / "ca.crt"
    ca.write_bytes(good)
    st = ca.stat()
    registry_endpoints(cfg, "reg.example:5000")
    if how == "renamed into place":                     # cp -p / rsync -a
        new = d / "ca.crt.new"
        new.write_bytes(bad)
        os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(new, ca)
    else:
        ca.write_bytes(bad)
        os.utime(ca, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (ca.stat().st_size, ca.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    with pytest.raises(InvalidParameter):
        registry_endpoints(cfg, "reg.example:5000")


def test_unreadable_certs_d_entries_as_dockerd(tmp_path: Path) -> None:
    """dockerd's loadTLSConfig lists certs.d/<host> (no stat of its entries) and reads
    only *.crt, *.cert, *.key: an entry that cannot be stat'ed is ignored unless it is
    one of those (then the certificate is invalid); a directory that cannot be listed
    is an invalid parameter. Never a raw OSError."""
    cfg = Config(certs_dir=str(tmp_path))
    d = tmp_path / "reg.example:5000"
    d.mkdir()
    (d / "README").symlink_to("README")                 # a symlink loop (ELOOP)
    registry_endpoints(cfg, "reg.example:5000")
    (d / "loop.crt").symlink_to("loop.crt")
    with pytest.raises(InvalidParameter, match="loop.crt"):
        registry_endpoints(cfg, "reg.example:5000")
    (tmp_path / "looped:5000").symlink_to("looped:5000")
    with pytest.raises(InvalidParameter, match="too many levels of symbolic links"):
        registry_endpoints(cfg, "looped:5000")
    (tmp_path / "afile:5000").write_text("")
    with pytest.raises(InvalidParameter, match="not a directory"):
        registry_endpoints(cfg, "afile:5000")
    registry_endpoints(cfg, "absent:5000")              # no directory: no certificates


def test_hosts_without_certs_share_a_context_and_few_are_kept(tmp_path: Path) -> None:
    """A context is ~0.8 MiB: hosts without a certs.d/<host>/ share the verified one
    (or the unverified one); the last few used contexts are kept, not every one
    ever made."""
    cfg = Config(certs_dir=str(tmp_path), insecure_registries=("insecure.example",))
    one = registry_endpoints(cfg, "10.9.9.1:5000")[0].tls     # (addresses: no lookups)
    assert registry_endpoints(cfg, "10.9.9.2")[0].tls is one
    insecure = registry_endpoints(cfg, "insecure.example")[0].tls
    assert insecure is not one and insecure.verify_mode == ssl.CERT_NONE
    assert registry_endpoints(cfg, "127.0.0.1:5000")[0].tls is insecure
    for i in range(20):
        (tmp_path / f"10.9.8.{i}").mkdir()
        registry_endpoints(cfg, f"10.9.8.{i}")
        assert registry_endpoints(cfg, "10.9.9.1:5000")[0].tls is one    # used: kept
    assert len(endpoints._CONTEXTS) <= 8
