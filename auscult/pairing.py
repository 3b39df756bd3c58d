"""Pairing codes: what a phone must show to send recordings, with a lifetime, renewable.

The code lives in ``<work_dir>/pairing.json`` (mode 0600), shared by the launcher (which
makes one at start), the phone page (which checks every request against it) and the desktop
(which draws it as a QR code and can replace it with "New pairing code"). A new code
revokes the old one at once; a code older than ``pairing_ttl_s`` is refused, so a QR code
photographed or read off the screen stops working by itself.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from config import Settings, get_settings

__all__ = ["PairingCode", "Pairings", "with_token"]

FILE_NAME = "pairing.json"


@dataclass(frozen=True)
class PairingCode:
    token: str
    created_at: float  # epoch seconds
    expires_at: float

    def valid(self, now: float | None = None) -> bool:
        return (now or time.time()) < self.expires_at


class Pairings:
    """The current pairing code of one work folder."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.path = Path(self.settings.work_dir) / FILE_NAME
        self._cache: tuple[float, PairingCode | None] | None = None

    def current(self) -> PairingCode | None:
        """The code on file (valid or expired), or None when there is none."""
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return None
        if self._cache is not None and self._cache[0] == mtime:
            return self._cache[1]
        try:
            code = PairingCode(**json.loads(self.path.read_text()))
        except (OSError, ValueError, TypeError):
            code = None
        self._cache = (mtime, code)
        return code

    def new_code(self) -> PairingCode:
        """Make a new code (revoking the old one) valid for ``pairing_ttl_s`` seconds."""
        now = time.time()
        code = PairingCode(secrets.token_urlsafe(16), now, now + self.settings.pairing_ttl_s)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".pairing.", suffix=".part")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(asdict(code), f)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._cache = None
        return code

    def check(self, given: str) -> bool:
        """Whether ``given`` is the current, unexpired code (constant-time comparison)."""
        code = self.current()
        ok = hmac.compare_digest(given.encode(), (code.token if code else "").encode())
        return bool(code) and ok and code.valid()


def with_token(url: str, token: str) -> str:
    """``url`` with its ``t=`` query parameter set to ``token``."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "t"] + [("t", token)]
    return urlunsplit(parts._replace(query=urlencode(query)))
