"""The phone pairing QR code: this computer's LAN address, the recorder URL, the QR image.

Small importable functions for the launcher and the desktop app::

    from qr_generator import lan_address, recorder_url, qr_png, qr_text
    url = recorder_url(lan_address().ip, 8503, token)
    st.image(qr_png(url))          # the analyzer's phone panel
    print(qr_text(url))            # the terminal

Finding the LAN address needs no internet: ``connect`` on a UDP socket sends nothing, it only
asks the kernel which local address would route to a private network; interface enumeration
adds the other addresses. With several candidates a private (RFC 1918) address on a physical
interface wins, and :class:`LanAddress` says which one was chosen and why. The ``lan_ip``
setting (``AUSCULT_LAN_IP``) overrides detection.
"""

from __future__ import annotations

import io
import ipaddress
import logging
import socket
import struct
import sys
from dataclasses import dataclass
from urllib.parse import quote

from config import Settings, get_settings

__all__ = [
    "LanAddress",
    "candidate_addresses",
    "lan_address",
    "matrix_from_text",
    "qr_matrix",
    "qr_png",
    "qr_text",
    "recorder_url",
]

log = logging.getLogger(__name__)

#: Private destinations for the routing question; nothing is sent to them.
_PROBE_TARGETS = ("10.255.255.255", "192.168.255.255", "172.31.255.255")
#: Interface name prefixes of virtual networks a phone cannot reach.
_VIRTUAL_PREFIXES = (
    "docker",
    "br-",
    "veth",
    "virbr",
    "vmnet",
    "vboxnet",
    "tun",
    "tap",
    "utun",
    "zt",
    "tailscale",
    "wg",
    "lo",
    "ifb",
    "dummy",
    "cni",
    "flannel",
    "podman",
)
_PRIVATE_NETS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)


@dataclass(frozen=True)
class LanAddress:
    """The address to advertise to the phone, and why it was chosen."""

    ip: str
    interface: str | None  # interface name when known
    reason: str  # one sentence for the terminal
    alternatives: tuple[str, ...] = ()  # other usable addresses, best first


def _is_private(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    return any(addr in net for net in _PRIVATE_NETS)


def _usable(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    return not (addr.is_loopback or addr.is_link_local or addr.is_multicast or addr.is_unspecified)


def _routed_addresses() -> list[str]:
    """Local addresses the kernel would use towards private networks (no packet is sent)."""
    found: list[str] = []
    for target in _PROBE_TARGETS:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.connect((target, 9))  # UDP connect: routing lookup only
                ip = s.getsockname()[0]
            except OSError:
                continue
        if ip not in found:
            found.append(ip)
    return found


def _interface_addresses() -> dict[str, str]:
    """``{ip: interface}`` for IPv4 interfaces (Linux ioctl; empty where unsupported)."""
    result: dict[str, str] = {}
    if not sys.platform.startswith("linux"):
        return result
    import fcntl

    siocgifaddr = 0x8915
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                packed = struct.pack("256s", name.encode()[:15])
                raw = fcntl.ioctl(s.fileno(), siocgifaddr, packed)
            except OSError:
                continue  # interface without an IPv4 address
            result[socket.inet_ntoa(raw[20:24])] = name
    return result


def _hostname_addresses() -> list[str]:
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return []
    return list(dict.fromkeys(info[4][0] for info in infos))


def candidate_addresses() -> list[tuple[str, str | None, bool]]:
    """Usable IPv4 addresses of this computer as ``(ip, interface, routed)``, best first."""
    routed = _routed_addresses()
    interfaces = _interface_addresses()
    ips = list(dict.fromkeys([*routed, *interfaces, *_hostname_addresses()]))
    candidates = [(ip, interfaces.get(ip), ip in routed) for ip in ips if _usable(ip)]

    def rank(c: tuple[str, str | None, bool]) -> tuple[int, int, int]:
        ip, iface, is_routed = c
        virtual = bool(iface) and iface.startswith(_VIRTUAL_PREFIXES)
        return (0 if _is_private(ip) else 1, 1 if virtual else 0, 0 if is_routed else 1)

    return sorted(candidates, key=rank)


def lan_address(settings: Settings | None = None) -> LanAddress:
    """The LAN address to put in the QR code (``settings.lan_ip`` wins when set)."""
    s = settings or get_settings()
    if s.lan_ip:
        return LanAddress(s.lan_ip, None, "set by AUSCULT_LAN_IP / lan_ip")
    candidates = candidate_addresses()
    if not candidates:
        return LanAddress(
            "127.0.0.1",
            "lo",
            "no network address found — connect this computer to the same Wi-Fi as the phone",
        )
    ip, iface, routed = candidates[0]
    where = f" on {iface}" if iface else ""
    others = tuple(c[0] for c in candidates[1:])
    if _is_private(ip):
        reason = f"private network address{where}"
    else:
        kind = "the routed address" if routed else "the address"
        reason = f"no private (RFC 1918) address found; using {kind}{where}"
    if others:
        reason += f"; other addresses: {', '.join(others)} (set AUSCULT_LAN_IP to choose)"
    return LanAddress(ip, iface, reason, others)


def recorder_url(host: str, port: int, token: str, scheme: str = "https") -> str:
    """``https://<host>:<port>/?t=<token>``, the address the phone opens."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    return f"{scheme}://{host}:{int(port)}/?t={quote(token, safe='')}"


def qr_matrix(url: str, border: int = 4) -> list[list[bool]]:
    """The QR modules for ``url`` (True = dark), including a quiet zone of ``border`` modules."""
    import qrcode

    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=border)
    qr.add_data(url)
    qr.make(fit=True)
    return [list(row) for row in qr.get_matrix()]


def qr_png(url: str, scale: int = 8, border: int = 4) -> bytes:
    """The QR code for ``url`` as PNG bytes (black on white, ``scale`` pixels per module)."""
    from PIL import Image

    matrix = qr_matrix(url, border)
    n = len(matrix)
    img = Image.new("1", (n, n), 1)
    img.putdata([0 if dark else 1 for row in matrix for dark in row])
    img = img.resize((n * scale, n * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# Two modules per character cell, top half / bottom half.
_HALF_BLOCKS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


def qr_text(url: str, invert: bool = True, border: int = 2) -> str:
    """The QR code as text for a terminal, two modules per line with half-block characters.

    ``invert=True`` draws the light modules with ink, for the usual light-on-dark terminal,
    so the code appears dark-on-light as scanners expect.
    """
    matrix = qr_matrix(url, border)
    if len(matrix) % 2:
        matrix.append([False] * len(matrix[0]))
    lines = []
    for top, bottom in zip(matrix[0::2], matrix[1::2], strict=True):
        pairs = zip(top, bottom, strict=True)
        lines.append("".join(_HALF_BLOCKS[(a != invert, b != invert)] for a, b in pairs))
    return "\n".join(lines)


def matrix_from_text(text: str, invert: bool = True) -> list[list[bool]]:
    """Read the module matrix back from :func:`qr_text` output (True = dark)."""
    chars = {v: k for k, v in _HALF_BLOCKS.items()}
    rows: list[list[bool]] = []
    for line in text.splitlines():
        pairs = [chars[c] for c in line]
        rows.append([top != invert for top, _ in pairs])
        rows.append([bottom != invert for _, bottom in pairs])
    return rows
