"""Real-browser test of the desktop analyzer: `streamlit run app.py` driven by headless Chromium.

The app runs on a free port with a temporary work folder. Debian's Chromium (never a
downloaded browser) uploads a real PhysioNet 2016 recording and waits for the result card;
then a WAV file is dropped into the inbox folder and must appear, analysed, on the Phone
inbox page. A full-page screenshot of every page is saved under ``screenshots/``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from chromium import CHROMIUM, CHROMIUM_ARGS, require_chromium, streamlit_screenshot
from servers import analyzer_app

from config import PROJECT_ROOT, get_settings

pytestmark = pytest.mark.e2e

SCREENSHOTS = PROJECT_ROOT / "screenshots"
VIEWPORT = {"width": 1400, "height": 900}

require_chromium()
playwright_sync = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def recordings() -> tuple[Path, Path]:
    """Two real recordings: one to upload, one to drop into the inbox."""
    root = get_settings().data_dir
    upload, drop = root / "training-a" / "a0001.flac", root / "training-b" / "b0002.flac"
    if not (upload.is_file() and drop.is_file()):
        pytest.skip(f"PhysioNet 2016 recordings not found under {root}; set AUSCULT_DATA_DIR")
    return upload, drop


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``streamlit run app.py`` on a free port with its own work folder; yields (url, work)."""
    work = tmp_path_factory.mktemp("app-e2e")
    env = {
        "AUSCULT_RECORDER_URL": "https://192.168.1.23:8503/?t=e2e-token",
        "AUSCULT_PAIRING_TOKEN": "e2e-token",
    }
    with analyzer_app(work, env) as url:
        yield url, work


@pytest.fixture(scope="module")
def page(server):
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport=VIEWPORT)
        finally:
            browser.close()


def screenshot(page, name: str) -> None:
    streamlit_screenshot(page, SCREENSHOTS / f"app-{name}.png")


def test_upload_shows_the_result_card(server, page, recordings):
    url, _ = server
    upload, _ = recordings
    page.goto(url)
    page.get_by_text("Analyze a heart sound").wait_for(timeout=30_000)
    page.get_by_role("button", name="Analyse demo").wait_for(timeout=30_000)  # model loaded
    started = time.perf_counter()
    page.locator("input[type=file]").first.set_input_files(str(upload))
    card = page.locator(".auscult-card")
    card.wait_for(timeout=30_000)
    elapsed = time.perf_counter() - started
    assert card.inner_text().split()[0] in {"Normal", "Abnormal", "Unsure"}
    page.get_by_text("Decision support, not a diagnosis").first.wait_for()
    page.get_by_text("Next step:").wait_for()
    page.get_by_role("button", name="Download result (JSON)").wait_for()
    print(f"upload → result card in the browser: {elapsed:.2f} s")
    assert elapsed < 8.0  # typically 1.4 s including the upload itself
    screenshot(page, "analyze")


def test_a_2khz_upload_plays_in_the_browser(server, page, recordings):
    url, _ = server
    upload, _ = recordings  # a PhysioNet FLAC at 2 kHz: browsers refuse to play it as it is
    page.goto(url)
    page.get_by_role("button", name="Analyse demo").wait_for(timeout=30_000)
    page.locator("input[type=file]").first.set_input_files(str(upload))
    page.locator(".auscult-card").wait_for(timeout=30_000)
    page.wait_for_function("document.querySelectorAll('audio').length >= 2", timeout=15_000)
    player = page.locator("audio").nth(1)  # the result's player (the demo picker's is first)
    page.wait_for_function(
        "a => a.readyState >= 1 && isFinite(a.duration) && a.duration > 0",
        arg=player.element_handle(),
        timeout=15_000,
    )
    assert player.evaluate("a => a.error") is None
    assert abs(player.evaluate("a => a.duration") - 35.5) < 1.0  # a0001 is 35.5 s long


def test_bad_upload_shows_an_error_and_the_app_keeps_working(server, page, tmp_path):
    url, _ = server
    bad = tmp_path / "notes.wav"
    bad.write_bytes(b"these are notes, not a recording" * 10)
    page.goto(url)
    page.get_by_text("Analyze a heart sound").wait_for(timeout=30_000)
    page.locator("input[type=file]").first.set_input_files(str(bad))
    page.get_by_text("cannot be analysed").wait_for(timeout=30_000)
    page.get_by_text("not a readable audio recording").wait_for()
    page.get_by_role("button", name="Analyse demo").click()
    page.locator(".auscult-card").wait_for(timeout=30_000)


def test_file_dropped_into_the_inbox_appears_analysed(server, page, recordings):
    url, work = server
    _, drop = recordings
    page.goto(f"{url}/phone")
    page.get_by_text("Latest recordings").wait_for(timeout=30_000)
    page.get_by_text("Scan with the phone").wait_for()
    page.wait_for_timeout(1500)  # the inbox has polled at least once: the page is open
    inbox = work / "inbox"
    inbox.mkdir(exist_ok=True)
    tmp = inbox / ".dropped.part"
    shutil.copy(drop, tmp)
    tmp.rename(inbox / "dropped-b0002.flac")
    started = time.perf_counter()
    page.get_by_text("dropped-b0002.flac").first.wait_for(timeout=15_000)
    page.locator(".auscult-card").wait_for(timeout=15_000)
    elapsed = time.perf_counter() - started
    print(f"inbox drop → result card: {elapsed:.2f} s")
    assert elapsed < 8.0  # typically 1–2 s; generous for a loaded test machine
    screenshot(page, "phone")


def test_other_pages_render(server, page):
    url, _ = server
    for path, title, name in (
        ("batch", "Batch analysis", "batch"),
        ("history", "History", "history"),
        ("model", "Model card", "model"),
    ):
        page.goto(f"{url}/{path}")
        page.get_by_role("heading", name=title).wait_for(timeout=30_000)
        page.wait_for_timeout(800)
        assert page.get_by_text("Traceback").count() == 0
        screenshot(page, name)
