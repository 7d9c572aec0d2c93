"""A throw-away certificate authority and a serving certificate for 127.0.0.1 and localhost (`--tls`), and
the client CA whose certificates authenticate users (kube's `--client-ca-file`).

The serving certificates are made by the operator's own `cluster.certificates.self_signed` (one implementation
of a self-signed CA); the client CA signs a certificate per user (CN the user, O its groups). The sandbox
keeps them in memory.
"""

from __future__ import annotations

import dataclasses
import datetime
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from superpod.cluster import certificates

VALIDITY = datetime.timedelta(days=30)


@dataclasses.dataclass(frozen=True)
class ServingCertificate:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def server_context(self, client_ca_pem: bytes | None = None) -> ssl.SSLContext:
        """The server's TLS; with `client_ca_pem`, client certificates signed by it are asked for (optional)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        if client_ca_pem is not None:
            context.verify_mode = ssl.CERT_OPTIONAL
            context.load_verify_locations(cadata=client_ca_pem.decode())
        with tempfile.TemporaryDirectory() as folder:
            cert, key = Path(folder, "tls.crt"), Path(folder, "tls.key")
            cert.write_bytes(self.cert_pem)
            key.write_bytes(self.key_pem)
            context.load_cert_chain(cert, key)
        return context


def generate(hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> ServingCertificate:
    with tempfile.TemporaryDirectory() as folder:
        files = certificates.self_signed(hosts, folder)
        return ServingCertificate(
            ca_pem=files.ca_pem,
            cert_pem=Path(files.cert_file).read_bytes(),
            key_pem=Path(files.key_file).read_bytes(),
        )


class ClientAuthority:
    """Signs client certificates: the Common Name is the user, each Organization a group."""

    def __init__(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "superpod-sandbox-client-ca")])
        self._certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_pem = self._certificate.public_bytes(serialization.Encoding.PEM)

    def issue(self, user: str, groups: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) for `user` in `groups`."""
        now = datetime.datetime.now(datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups]
            + [x509.NameAttribute(NameOID.COMMON_NAME, user)]
        )
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return certificate.public_bytes(serialization.Encoding.PEM), key_pem
