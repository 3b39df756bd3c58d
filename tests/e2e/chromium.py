"""What the real-browser tests share: Debian's Chromium and the flags it needs on this network.

Never a downloaded browser: Playwright drives ``/usr/bin/chromium`` (``apt-get install
chromium``). Without the background-networking flags Chromium keeps trying hosts this
closed network refuses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FAKE_MEDIA_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
#: A phone-sized browser context that accepts the recording page's self-signed certificate
#: (as a user does once on the phone).
PHONE_CONTEXT = {
    "ignore_https_errors": True,
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}


def fake_microphone_file_arg(wav: Path) -> str:
    """With ``FAKE_MEDIA_ARGS``: the fake microphone plays ``wav`` once (no loop)."""
    return f"--use-file-for-fake-audio-capture={wav}%noloop"


def require_chromium() -> None:
    """Skip the calling test module when Chromium or Playwright is missing."""
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian Chromium is not installed at /usr/bin/chromium (apt-get install chromium)",
            allow_module_level=True,
        )
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def streamlit_screenshot(page, path: Path) -> None:
    """A full-page screenshot of a Streamlit page.

    Streamlit scrolls inside its own container, so the viewport is grown until the layout
    stops growing (images load late), then put back.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size
    page.wait_for_load_state("networkidle")
    height = 0
    for _ in range(5):
        needed = page.evaluate(
            "() => Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))"
        )
        if needed <= height:
            break
        height = needed
        page.set_viewport_size(
            {"width": viewport["width"], "height": max(viewport["height"], height)}
        )
        page.wait_for_timeout(400)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(viewport)
