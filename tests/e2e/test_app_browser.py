"""Real-browser test of the desktop analyzer: `streamlit run app.py` driven by headless Chromium.

The app runs on a free port with a temporary work folder. Debian's Chromium (never a
downloaded browser) uploads a real PhysioNet 2016 recording and waits for the result card;
then a WAV file is dropped into the inbox folder and must appear, analysed, on the Phone
inbox page. A full-page screenshot of every page is saved under ``screenshots/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from chromium import CHROMIUM, CHROMIUM_ARGS, require_chromium

from config import PROJECT_ROOT, get_settings

pytestmark = pytest.mark.e2e

SCREENSHOTS = PROJECT_ROOT / "screenshots"
VIEWPORT = {"width": 1400, "height": 900}

require_chromium()
playwright_sync = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    port = _free_port()
    env = dict(
        os.environ,
        AUSCULT_WORK_DIR=str(work),
        AUSCULT_RECORDER_URL="https://192.168.1.23:8503/?t=e2e-token",
        AUSCULT_PAIRING_TOKEN="e2e-token",
    )
    log = (work / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
        cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.close()
                    pytest.fail(
                        "streamlit did not start:\n" + (work / "streamlit.log").read_text()[-3000:]
                    )
                time.sleep(0.2)
        yield url, work
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def page(server):
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport=VIEWPORT)
        finally:
            browser.close()


def screenshot(page, name: str) -> None:
    """Full page: Streamlit scrolls inside its own container, so grow the viewport to fit."""
    SCREENSHOTS.mkdir(exist_ok=True)
    page.wait_for_load_state("networkidle")
    height = 0
    for _ in range(5):  # images load and the layout grows: resize until it stops growing
        needed = page.evaluate(
            "() => Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))"
        )
        if needed <= height:
            break
        height = needed
        page.set_viewport_size(
            {"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], height)}
        )
        page.wait_for_timeout(400)
    page.screenshot(path=str(SCREENSHOTS / f"app-{name}.png"), full_page=True)
    page.set_viewport_size(VIEWPORT)


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
