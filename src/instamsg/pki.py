"""The server's own certificate authority, created on first start in the data directory (spec D11).

It signs the TLS listeners' server certificate and the client certificates of secure clients.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

logger = logging.getLogger(__name__)

CA_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=825)


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    certificate_pem: str
    key_pem: str
    not_after: dt.datetime


def _write_private(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    # PKCS#8 "BEGIN PRIVATE KEY": the form the Java device library loads (spec §5.3).
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class CertificateAuthority:
    """Loads or creates `ca.pem` / `ca.key` in a directory and issues certificates."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.certificate_path = directory / "ca.pem"
        self.key_path = directory / "ca.key"
        if not self.certificate_path.exists() or not self.key_path.exists():
            self._create()
        self.certificate = x509.load_pem_x509_certificate(self.certificate_path.read_bytes())
        loaded_key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        assert isinstance(loaded_key, rsa.RSAPrivateKey)
        self.key = loaded_key

    def _create(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        key = _new_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"InstaMsg CA {socket.gethostname()}")])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(self.key_path, _key_pem(key))
        self.certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        logger.info("ca_created path=%s", self.certificate_path)

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def _issue(
        self, common_name: str, usage: x509.ObjectIdentifier, names: list[x509.GeneralName] | None = None
    ) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        key = _new_key()
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + LEAF_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.key, hashes.SHA256()), key

    def issue_server_certificate(self, hostnames: list[str]) -> IssuedCertificate:
        names: list[x509.GeneralName] = []
        for hostname in dict.fromkeys(hostnames):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(hostname)))
            except ValueError:
                names.append(x509.DNSName(hostname))
        certificate, key = self._issue(hostnames[0], ExtendedKeyUsageOID.SERVER_AUTH, names)
        return IssuedCertificate(
            certificate.public_bytes(serialization.Encoding.PEM).decode(),
            _key_pem(key).decode(),
            certificate.not_valid_after_utc,
        )

    def issue_client_certificate(self, client_uuid: str) -> IssuedCertificate:
        """A fresh RSA-2048 key and certificate with subject CN = the client UUID (spec D11, S11)."""
        certificate, key = self._issue(client_uuid, ExtendedKeyUsageOID.CLIENT_AUTH)
        return IssuedCertificate(
            certificate.public_bytes(serialization.Encoding.PEM).decode(),
            _key_pem(key).decode(),
            certificate.not_valid_after_utc,
        )


def default_server_hostnames(extra: list[str]) -> list[str]:
    return ["localhost", "127.0.0.1", "::1", socket.gethostname(), *extra]


def server_ssl_contexts(
    ca: CertificateAuthority,
    directory: Path,
    *,
    certificate: Path | None,
    key: Path | None,
    hostnames: list[str],
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """TLS 1.2+ contexts for MQTTS and WSS; neither needs SNI (spec §3.3).

    MQTTS asks for a client certificate without requiring one and verifies it against the CA; WSS asks
    for none (spec C16).
    """
    if certificate is None or key is None:
        certificate = directory / "server.pem"
        key = directory / "server.key"
        if not certificate.exists() or not key.exists():
            issued = ca.issue_server_certificate(hostnames)
            _write_private(key, issued.key_pem.encode())
            certificate.write_text(issued.certificate_pem)
    contexts = []
    for verify_mode in (ssl.CERT_OPTIONAL, ssl.CERT_NONE):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certificate, key)
        if verify_mode != ssl.CERT_NONE:
            context.load_verify_locations(cadata=ca.certificate_pem.decode())
        context.verify_mode = verify_mode
        contexts.append(context)
    return contexts[0], contexts[1]
