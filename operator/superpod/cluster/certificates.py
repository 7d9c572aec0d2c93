"""A self-signed serving certificate for the admission webhook, made with `cryptography`.

Used when no certificate is mounted (`--tls-cert-file`/`--tls-key-file` unset): the operator makes a private CA
and a serving certificate signed by it for the webhook's host names, writes both to a private temporary
directory (the container's only writable place is /tmp) and puts the CA into the webhook configuration's
`caBundle`. kopf's own self-signed certificate cannot be used here: it goes through oscrypto, which fails to
detect OpenSSL 3 (docs/design.md section 11).
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import tempfile
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)


@dataclasses.dataclass(frozen=True)
class CertificateFiles:
    """PEM files of a serving certificate and its key, and the CA that signed it."""

    cert_file: str
    key_file: str
    ca_pem: bytes  # the webhook configuration's caBundle (base64 of this)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=ca,
        crl_sign=ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def self_signed(hosts: Iterable[str], directory: str | None = None) -> CertificateFiles:
    """A CA and a certificate for `hosts` (DNS names or IP addresses), written as tls.crt/tls.key."""
    names = list(dict.fromkeys(host for host in hosts if host))
    if not names:
        raise ValueError("a serving certificate needs at least one host name")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("superpod-operator-webhook-ca"))
        .issuer_name(_name("superpod-operator-webhook-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder = Path(directory or tempfile.mkdtemp(prefix="superpod-webhook-"))
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return CertificateFiles(
        cert_file=str(cert_path),
        key_file=str(key_path),
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
    )


def mounted(cert_file: str, key_file: str) -> CertificateFiles:
    """A mounted kubernetes.io/tls Secret (cert-manager's too): the CA is `ca.crt` beside it when present.

    cert-manager and the chart write `ca.crt` next to `tls.crt`; without it the chain in `tls.crt` stands in
    (its last certificate), which suits `external` mode, where the chart or cert-manager's CA injector fills
    the caBundle anyway.
    """
    ca_path = Path(cert_file).with_name("ca.crt")
    ca_pem = ca_path.read_bytes() if ca_path.exists() else _last_certificate(Path(cert_file).read_bytes())
    return CertificateFiles(cert_file=cert_file, key_file=key_file, ca_pem=ca_pem)


def _last_certificate(chain_pem: bytes) -> bytes:
    certificates = x509.load_pem_x509_certificates(chain_pem)
    return certificates[-1].public_bytes(serialization.Encoding.PEM)
