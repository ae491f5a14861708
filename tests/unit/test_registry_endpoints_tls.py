"""distribution/endpoints: a plain-http registry endpoint (a mirror, or an insecure
registry's http fallback) carries the TLS settings an https redirect or token realm
from it is fetched with: verified unless the host is insecure (Go's endpoints get
newTLSConfig(host, isSecureIndex(host)) whatever their scheme). No root, no daemon."""
from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from pydockerd.config import Config
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
    one is kept per host and certs.d state; a new CA file gives a new one."""
    cfg = Config(certs_dir=str(tmp_path))
    first = registry_endpoints(cfg, "reg.example:5000")[0].tls
    assert registry_endpoints(cfg, "reg.example:5000")[0].tls is first
    assert registry_endpoints(cfg, "other.example:5000")[0].tls is not first
    d = tmp_path / "reg.example:5000"
    d.mkdir()
    changed = registry_endpoints(cfg, "reg.example:5000")[0].tls
    assert changed is not first
    (d / "ca.crt").write_text("not a certificate")
    with pytest.raises(InvalidParameter):                # read again, not the kept one
        registry_endpoints(cfg, "reg.example:5000")
