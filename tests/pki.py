"""Certificates made for a test, as a Strimzi cluster has them: a cluster CA, a broker
certificate for 127.0.0.1 (host names are checked, so the address must be in it), and
a client certificate like a Strimzi ``tls`` user's, all signed by the CA."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CA_NAME = "test-cluster-ca"
CLIENT_NAME = "certflow-worker"


@dataclass(frozen=True)
class Pki:
    """PEM files: the CA's certificate, the broker's and the client's certificates and
    keys, the broker's key and chain in one file (what Kafka's PEM keystore takes),
    and a key that matches no certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    server_keystore: Path
    client_cert: Path
    client_key: Path
    other_key: Path


def make_pki(directory: Path) -> Pki:
    ca_key, server_key, client_key = _key(), _key(), _key()
    ca = _certificate(CA_NAME, ca_key, ca_key, ca=True)
    server = _certificate("broker", server_key, ca_key, ip="127.0.0.1")
    return Pki(
        ca=_write(directory / "ca.crt", _pem(ca)),
        server_cert=_write(directory / "server.crt", _pem(server)),
        server_key=_write(directory / "server.key", _pem_key(server_key)),
        server_keystore=_write(directory / "server.pem", _pem_key(server_key) + _pem(server) + _pem(ca)),
        client_cert=_write(directory / "user.crt", _pem(_certificate(CLIENT_NAME, client_key, ca_key))),
        client_key=_write(directory / "user.key", _pem_key(client_key)),
        other_key=_write(directory / "other.key", _pem_key(_key())),
    )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption(),
    )


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, ca_key: ec.EllipticCurvePrivateKey,
    *, ca: bool = False, ip: str | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False,
        )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256())
