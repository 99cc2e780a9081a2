"""A private CA and a server certificate for the control server, for tests and the lab.

The certificate names every address an agent may use to reach a server in the lab: 127.0.0.1,
``localhost`` and the lab bridge 10.231.0.1 (where agents inside lab hosts find it).
``python -m lab.tls DIR`` writes ``ca.pem``, ``server.pem`` and ``server-key.pem`` into DIR, so a
pull-mode demo can run ``graphium-run serve --tls-cert DIR/server.pem --tls-key DIR/server-key.pem``
and its agents ``--ca-cert DIR/ca.pem``. Keys are fresh on every call; nothing is checked in.
"""

from __future__ import annotations

import datetime
import ipaddress
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BRIDGE = "10.231.0.1"
SERVER_NAMES = ("localhost",)
SERVER_ADDRESSES = ("127.0.0.1", "::1", BRIDGE)


@dataclass(frozen=True)
class Pki:
    """Paths of one CA and the server certificate it signed."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
    )


def make_ca(directory: Path, common_name: str = "graphium test CA") -> tuple[Path, Path]:
    """A self-signed CA: (certificate path, key path) in ``directory``."""
    key = _key()
    cert = (
        _builder(_name(common_name), _name(common_name), key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "ca.pem", directory / "ca-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, key)
    return cert_path, key_path


def make_server_cert(
    directory: Path,
    ca_cert: Path,
    ca_key: Path,
    *,
    names: tuple[str, ...] = SERVER_NAMES,
    addresses: tuple[str, ...] = SERVER_ADDRESSES,
    stem: str = "server",
) -> tuple[Path, Path]:
    """A server certificate signed by the CA, valid for ``names`` and ``addresses``."""
    issuer = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    signer = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    assert isinstance(signer, ec.EllipticCurvePrivateKey)
    key = _key()
    alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (
        _builder(_name(names[0] if names else addresses[0]), issuer.subject, key)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(signer, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, key)
    return cert_path, key_path


def make_pki(directory: Path) -> Pki:
    """A CA and a server certificate for the lab's addresses, written into ``directory``."""
    ca_cert, ca_key = make_ca(directory)
    server_cert, server_key = make_server_cert(directory, ca_cert, ca_key)
    return Pki(directory, ca_cert, ca_key, server_cert, server_key)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m lab.tls DIR")
    pki = make_pki(Path(sys.argv[1]))
    print(f"--tls-cert {pki.server_cert} --tls-key {pki.server_key}")
    print(f"--ca-cert {pki.ca_cert}")
