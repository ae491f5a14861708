"""Keys, CSRs and certificates of the swarm identity (cryptography: loaded
only when joining or in a swarm)."""
from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


class CertificateError(ValueError):
    """A certificate or root that cannot be used (does not chain, wrong key)."""


def new_key() -> bytes:
    """A fresh ECDSA P-256 private key (what SwarmKit's CSRs use), PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def new_csr(key_pem: bytes) -> bytes:
    """A CSR with an empty subject: the CA sets CN (node ID), OU (role), O (cluster)."""
    key = serialization.load_pem_private_key(key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def validity(cert_pem: bytes) -> tuple[datetime, datetime]:
    """The leaf certificate's NotBefore and NotAfter (UTC, aware)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _chain_issuer(cert_pem: bytes, root_ca: bytes) -> x509.Certificate:
    """The certificate that signed the leaf, after checking that the chain leads
    to one of the roots: a root first, else an intermediate sent with the leaf (a
    root rotation's cross-signed certificate), as TLS verification picks them."""
    chain = x509.load_pem_x509_certificates(cert_pem)
    roots = x509.load_pem_x509_certificates(root_ca)
    current, first = chain[0], None
    intermediates = chain[1:]
    for _ in range(len(chain)):
        root = next((r for r in roots if _issued_by(current, r)), None)
        step = root or next((c for c in intermediates if _issued_by(current, c)), None)
        if step is None:
            break
        first = first or step
        if root is not None:
            return first
        intermediates = [c for c in intermediates if c is not step]
        current = step
    raise CertificateError("the certificate does not chain to the swarm's root CA")


def trust_bundle(cert_pem: bytes, root_ca: bytes) -> bytes:
    """The roots a TLS connection to a manager trusts: the swarm's root CA, and
    during a root rotation the new CA's certificate cross-signed by the old root
    (it comes with our renewed certificate, checked here against the root).
    BoringSSL, unlike Go, stops at that intermediate when a manager presents it
    (its subject is its issuer's, `swarm-ca`, and it has no authority key ID, so
    it looks self-signed): trusted, it ends the chain."""
    roots = x509.load_pem_x509_certificates(root_ca)
    extra = [c for c in x509.load_pem_x509_certificates(cert_pem)[1:]
             if c not in roots and any(_issued_by(c, r) for r in roots)]
    return root_ca + b"".join(c.public_bytes(serialization.Encoding.PEM) for c in extra)


def check_pair(key_pem: bytes, cert_pem: bytes, root_ca: bytes) -> None:
    """The certificate is for this key and chains to the root (CertificateError)."""
    key = serialization.load_pem_private_key(key_pem, None)
    leaf = x509.load_pem_x509_certificate(cert_pem)
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(der, spki) != leaf.public_key().public_bytes(der, spki):
        raise CertificateError("the certificate is not for the node's key")
    _chain_issuer(cert_pem, root_ca)


def issuer_info(cert_pem: bytes, root_ca: bytes) -> tuple[bytes, bytes]:
    """The DER subject and SubjectPublicKeyInfo of the certificate's issuer (what
    the manager compares with its CA's to see a root rotation through)."""
    try:
        issuer = _chain_issuer(cert_pem, root_ca)
    except CertificateError:
        return x509.load_pem_x509_certificate(cert_pem).issuer.public_bytes(), b""
    return issuer.subject.public_bytes(), issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
