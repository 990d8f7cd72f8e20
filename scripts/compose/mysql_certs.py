"""Certificates for the compose stack's MySQL 8.4: a private CA and a server certificate for host ``mysql``.

Run once by the ``mysql-certs`` service (docker-compose.yaml) into the ``mysql-certs`` volume: MySQL
serves ``server-cert.pem``/``server-key.pem``, and every Airflow container verifies it against
``ca.pem`` with ``ssl_mode=VERIFY_IDENTITY`` (the name ``mysql`` is in the certificate), so
REPORTS_SOURCE_REQUIRE_TLS / REPORTS_TARGET_REQUIRE_TLS=verify hold in the stack. Existing files are
kept, so a restart does not change the CA the connections trust.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

MYSQL_UID = 999  # the mysql user of the mysql:8.4 image: it must read its key


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def main(directory: str) -> None:
    """Write ca.pem, server-cert.pem and server-key.pem into ``directory`` unless they exist."""
    out = Path(directory)
    if (out / "server-cert.pem").exists():
        print(f"{out}: certificates exist, kept")
        return
    now = dt.datetime.now(dt.UTC)
    ca_key, server_key = _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "report-pipeline compose CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mysql")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("mysql"), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (out / "server-cert.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_path = out / "server-key.pem"
    key_path.write_bytes(_pem(server_key))
    key_path.chmod(0o600)
    if os.geteuid() == 0:
        os.chown(key_path, MYSQL_UID, MYSQL_UID)
    print(f"{out}: CA and server certificate for host 'mysql' written")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/certs")
