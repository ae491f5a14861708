"""Keys, CSRs and certificates of the swarm identity (cryptography: loaded
only when joining or in a swarm)."""
from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


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


def issuer_info(cert_pem: bytes, root_ca: bytes) -> tuple[bytes, bytes]:
    """The DER subject and SubjectPublicKeyInfo of the certificate's issuer."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    for root in x509.load_pem_x509_certificates(root_ca):
        if root.subject == cert.issuer:
            return root.subject.public_bytes(), root.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.issuer.public_bytes(), b""
