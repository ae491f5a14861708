"""distribution/endpoints: a plain-http registry endpoint (a mirror, or an insecure
registry's http fallback) carries the TLS settings an https redirect or token realm
from it is fetched with: verified unless the host is insecure (Go's endpoints get
newTLSConfig(host, isSecureIndex(host)) whatever their scheme). No root, no daemon."""
from __future__ import annotations

import ssl
from pathlib import Path

from pydockerd.config import Config
from pydockerd.distribution.endpoints import registry_endpoints
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
