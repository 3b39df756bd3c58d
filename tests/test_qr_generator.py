"""LAN address detection, the recorder URL and the QR code (checked with a real QR reader)."""

from __future__ import annotations

import dataclasses
import io
import socket

import pytest
import zxingcpp
from PIL import Image

import qr_generator
from config import Settings


def decode(png: bytes) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


def test_recorder_url_carries_the_token():
    assert (
        qr_generator.recorder_url("192.168.1.5", 8503, "abc_DEF-1")
        == "https://192.168.1.5:8503/?t=abc_DEF-1"
    )


def test_recorder_url_escapes_the_token_and_brackets_ipv6():
    assert (
        qr_generator.recorder_url("fe80::1", 443, "a b/c") == "https://[fe80::1]:443/?t=a%20b%2Fc"
    )


def test_qr_png_decodes_to_the_url():
    url = "https://192.168.1.5:8503/?t=Zm9vYmFyYmF6cXV4MTIzNDU2"
    png = qr_generator.qr_png(url)
    assert png.startswith(b"\x89PNG")
    assert decode(png) == [url]


def test_terminal_qr_decodes_to_the_url():
    url = "https://calm-river.trycloudflare.com/?t=Zm9vYmFyYmF6cXV4MTIzNDU2"
    text = qr_generator.qr_text(url)
    assert set(text) <= set(" ▀▄█\n")
    matrix = qr_generator.matrix_from_text(text)
    img = Image.new("L", (len(matrix[0]), len(matrix)), 255)
    img.putdata([0 if dark else 255 for row in matrix for dark in row])
    buf = io.BytesIO()
    img.resize((img.width * 8, img.height * 8), Image.NEAREST).save(buf, format="PNG")
    assert decode(buf.getvalue()) == [url]


def test_terminal_qr_round_trips_its_modules():
    url = "https://10.0.0.2:8503/?t=x"
    matrix = qr_generator.qr_matrix(url, border=2)
    back = qr_generator.matrix_from_text(qr_generator.qr_text(url, border=2))
    assert back[: len(matrix)] == matrix


def test_configured_lan_ip_wins():
    s = dataclasses.replace(Settings(), lan_ip="192.168.50.2")
    lan = qr_generator.lan_address(s)
    assert lan.ip == "192.168.50.2"
    assert "AUSCULT_LAN_IP" in lan.reason


def test_detected_address_is_a_usable_ipv4(monkeypatch):
    lan = qr_generator.lan_address(dataclasses.replace(Settings(), lan_ip=""))
    socket.inet_aton(lan.ip)
    assert lan.reason


def fake_network(monkeypatch, routed, interfaces, hostname=()):
    monkeypatch.setattr(qr_generator, "_routed_addresses", lambda: list(routed))
    monkeypatch.setattr(qr_generator, "_interface_addresses", lambda: dict(interfaces))
    monkeypatch.setattr(qr_generator, "_hostname_addresses", lambda: list(hostname))


def test_private_physical_address_is_preferred_and_named(monkeypatch):
    fake_network(
        monkeypatch,
        routed=["203.0.113.7"],
        interfaces={
            "127.0.0.1": "lo",
            "172.17.0.1": "docker0",
            "192.168.1.20": "wlan0",
            "203.0.113.7": "eth0",
        },
    )
    lan = qr_generator.lan_address(dataclasses.replace(Settings(), lan_ip=""))
    assert lan.ip == "192.168.1.20"
    assert lan.interface == "wlan0"
    assert "private" in lan.reason
    assert "wlan0" in lan.reason
    assert lan.alternatives == ("172.17.0.1", "203.0.113.7")
    assert "AUSCULT_LAN_IP" in lan.reason  # says how to pick another


def test_routed_address_is_used_when_no_private_one_exists(monkeypatch):
    fake_network(monkeypatch, routed=["198.51.100.4"], interfaces={"198.51.100.4": "eth0"})
    lan = qr_generator.lan_address(dataclasses.replace(Settings(), lan_ip=""))
    assert lan.ip == "198.51.100.4"
    assert "no private" in lan.reason


def test_no_network_falls_back_to_loopback_and_says_so(monkeypatch):
    fake_network(monkeypatch, routed=[], interfaces={"127.0.0.1": "lo"}, hostname=["127.0.1.1"])
    lan = qr_generator.lan_address(dataclasses.replace(Settings(), lan_ip=""))
    assert lan.ip == "127.0.0.1"
    assert "same Wi-Fi" in lan.reason


def test_routing_probe_sends_nothing(monkeypatch):
    sent = []

    class Spy(socket.socket):
        def send(self, *a, **k):  # pragma: no cover - must not be called
            sent.append(a)
            return super().send(*a, **k)

        def sendto(self, *a, **k):  # pragma: no cover - must not be called
            sent.append(a)
            return super().sendto(*a, **k)

    monkeypatch.setattr(qr_generator.socket, "socket", Spy)
    qr_generator._routed_addresses()
    assert sent == []


@pytest.mark.parametrize("ip", ["10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.0.1"])
def test_rfc1918_addresses_are_private(ip):
    assert qr_generator._is_private(ip)


@pytest.mark.parametrize("ip", ["8.8.8.8", "172.32.0.1", "192.0.2.2", "100.64.0.1"])
def test_other_addresses_are_not_private(ip):
    assert not qr_generator._is_private(ip)
