"""A throw-away certificate authority and a serving certificate for 127.0.0.1 and localhost (`--tls`).

The certificates are made by the operator's own `cluster.certificates.self_signed` (one implementation of a
self-signed CA); the sandbox keeps them in memory.
"""

from __future__ import annotations

import dataclasses
import ssl
import tempfile
from pathlib import Path

from superpod.cluster import certificates


@dataclasses.dataclass(frozen=True)
class ServingCertificate:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
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
