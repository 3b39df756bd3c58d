"""The self-signed certificate of the phone page: names, lifetime, reuse and renewal."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import stat
import threading

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from auscult.tls import certificate_names, create_certificate, ensure_certificate


def load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_certificate_names_the_lan_address_and_localhost(tmp_path):
    cert = ensure_certificate(tmp_path, "192.168.1.23")
    assert cert.created
    assert cert.names == {"192.168.1.23", "127.0.0.1", "localhost"}
    names, _ = certificate_names(cert.cert_path)
    assert names == cert.names


def test_certificate_meets_what_phones_require(tmp_path):
    cert = load(create_certificate(tmp_path, "10.0.0.5").cert_path)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime <= dt.timedelta(days=825)  # Apple's limit for TLS server certificates
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert cert.signature_hash_algorithm.name == "sha256"


def test_private_key_is_readable_by_the_owner_only(tmp_path):
    cert = ensure_certificate(tmp_path, "10.0.0.5")
    assert stat.S_IMODE(cert.key_path.stat().st_mode) == 0o600


def test_certificate_is_reused_while_valid_for_the_same_address(tmp_path):
    first = ensure_certificate(tmp_path, "192.168.1.23")
    again = ensure_certificate(tmp_path, "192.168.1.23")
    assert not again.created
    assert again.cert_path.read_bytes() == first.cert_path.read_bytes()


def test_certificate_is_renewed_when_the_address_changes(tmp_path):
    first = ensure_certificate(tmp_path, "192.168.1.23").cert_path.read_bytes()
    moved = ensure_certificate(tmp_path, "192.168.1.77")
    assert moved.created
    assert "192.168.1.77" in moved.names
    assert moved.cert_path.read_bytes() != first


def test_certificate_is_renewed_before_it_expires(tmp_path):
    old = ensure_certificate(
        tmp_path, "192.168.1.23", now=dt.datetime.now(dt.UTC) - dt.timedelta(days=362)
    )
    assert old.created
    renewed = ensure_certificate(tmp_path, "192.168.1.23")
    assert renewed.created
    assert renewed.not_after > old.not_after


def test_unreadable_certificate_is_replaced(tmp_path):
    ensure_certificate(tmp_path, "192.168.1.23")
    (tmp_path / "cert.pem").write_text("garbage")
    assert ensure_certificate(tmp_path, "192.168.1.23").created


def test_a_tls_client_trusting_the_certificate_can_connect(tmp_path):
    cert = ensure_certificate(tmp_path, "127.0.0.1")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert.cert_path, cert.key_path)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        client_ctx = ssl.create_default_context(cafile=str(cert.cert_path))
        with socket.create_connection(("127.0.0.1", port)) as raw:
            with client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.recv(2) == b"ok"
        thread.join(5)


def test_invalid_address_is_refused(tmp_path):
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        create_certificate(tmp_path, "not-an-ip")
