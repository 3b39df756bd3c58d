"""A self-signed TLS certificate for the phone recording page on the local network.

Phones only give a web page the microphone in a secure context, so the recording page is
served over HTTPS. There is no public name for a laptop on a Wi-Fi network, so the launcher
makes its own certificate: an ECDSA P-256 key (fast, accepted by Android and iOS), SHA-256,
``serverAuth`` usage, and subject alternative names for the LAN address, ``localhost`` and
``127.0.0.1``. Its validity stays under Apple's 825-day limit. The certificate is reused until
it is about to expire or the LAN address changes; the phone then accepts it once.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Certificate", "certificate_names", "create_certificate", "ensure_certificate"]

log = logging.getLogger(__name__)

CERT_NAME = "cert.pem"
KEY_NAME = "key.pem"
VALID_DAYS = 365
#: Renew a certificate this close to its end, so a session never runs into the expiry.
RENEW_BEFORE = dt.timedelta(days=7)


@dataclass(frozen=True)
class Certificate:
    """Paths of a PEM certificate and its private key, and what they are valid for."""

    cert_path: Path
    key_path: Path
    names: frozenset[str]  # DNS names and IP addresses in the subject alternative names
    not_after: dt.datetime  # UTC
    created: bool  # made now (False: an existing one was reused)


def _required_names(ip: str | None, hostnames: Iterable[str]) -> set[str]:
    names = {"localhost", "127.0.0.1", *hostnames}
    if ip:
        names.add(str(ipaddress.ip_address(ip)))
    return names


def certificate_names(cert_path: Path) -> tuple[frozenset[str], dt.datetime]:
    """The subject alternative names and the end of validity (UTC) of a PEM certificate."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset(), cert.not_valid_after_utc
    names = {str(n) for n in san.get_values_for_type(x509.DNSName)}
    names |= {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    return frozenset(names), cert.not_valid_after_utc


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with the given permissions (the key must never be world-readable)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_certificate(
    folder: Path,
    ip: str | None,
    *,
    hostnames: Iterable[str] = (),
    days: int = VALID_DAYS,
    now: dt.datetime | None = None,
) -> Certificate:
    """Make a new self-signed certificate and key in ``folder`` (overwriting old ones)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = _required_names(ip, hostnames)
    alt: list[x509.GeneralName] = []
    for name in sorted(names):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Auscult (self-signed, this computer)"),
            x509.NameAttribute(NameOID.COMMON_NAME, ip or "localhost"),
        ]
    )
    start = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / CERT_NAME, folder / KEY_NAME
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(key_path, key_pem, 0o600)
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    log.info("created a TLS certificate for %s in %s", ", ".join(sorted(names)), folder)
    return Certificate(cert_path, key_path, frozenset(names), cert.not_valid_after_utc, True)


def ensure_certificate(
    folder: Path,
    ip: str | None,
    *,
    hostnames: Iterable[str] = (),
    now: dt.datetime | None = None,
) -> Certificate:
    """Reuse the certificate in ``folder`` if it covers ``ip`` and is not about to expire.

    Otherwise (missing, unreadable, expiring within a week, or made for another address)
    create a new one. Keeping the same certificate means the phone accepts it only once.
    """
    folder = Path(folder)
    cert_path, key_path = folder / CERT_NAME, folder / KEY_NAME
    needed = _required_names(ip, hostnames)
    moment = now or dt.datetime.now(dt.UTC)
    if cert_path.exists() and key_path.exists():
        try:
            names, not_after = certificate_names(cert_path)
        except Exception as exc:  # corrupt file: make a new one
            log.warning("cannot read %s (%s); making a new certificate", cert_path, exc)
        else:
            if needed <= names and not_after - RENEW_BEFORE > moment:
                return Certificate(cert_path, key_path, names, not_after, False)
            log.info("the TLS certificate does not cover %s or expires soon; renewing", ip)
    return create_certificate(folder, ip, hostnames=hostnames, now=now)
