"""The whole journey in a real browser, with no human step: phone records → desktop shows it.

Both servers run as in use, sharing one temporary work folder (``AUSCULT_WORK_DIR``): the
desktop analyzer (``streamlit run app.py`` on 127.0.0.1) and the phone recording page (the
ASGI app over HTTPS with a self-signed certificate, bound to 127.0.0.1 here rather than the
LAN). One headless Debian Chromium holds two contexts: a desktop window left open on the
analyzer's Phone inbox page, and a phone whose fake microphone plays a real PhysioNet 2016
recording that the model labels with a clear margin. The phone records 10 s with the pairing
token; nobody touches the desktop page afterwards.

Checked: the result card appears on the desktop by itself for the new recording, with the
label the analyzer gives the original file; the time from the phone's stop to the result
text being visible on the desktop is printed against the 2 s target (asserted only as "within
seconds", ≤ 10 s, so machine load cannot make it flake).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from chromium import (
    CHROMIUM,
    CHROMIUM_ARGS,
    FAKE_MEDIA_ARGS,
    PHONE_CONTEXT,
    fake_microphone_file_arg,
    require_chromium,
    streamlit_screenshot,
)
from servers import analyzer_app, recording_page
from test_phone_capture import RECORD_S, clear_record

from auscult.store import Store
from config import PROJECT_ROOT, get_settings, settings_from_env

pytestmark = [pytest.mark.e2e, pytest.mark.data]

require_chromium()
playwright_sync = pytest.importorskip("playwright.sync_api")
if not (get_settings().data_dir / "training-a" / "REFERENCE.csv").is_file():
    pytest.skip(
        f"PhysioNet 2016 data not found at {get_settings().data_dir}; set AUSCULT_DATA_DIR",
        allow_module_level=True,
    )
if not get_settings().metadata_path.is_file():
    pytest.skip(
        f"no trained model ({get_settings().metadata_path} is missing): nothing to compare",
        allow_module_level=True,
    )

TOKEN = "e2e-journey-token-41c2d8"
LABEL = "abnormal"  # the record played: one the model calls abnormal with a clear margin
SITE = "mitral"
SCREENSHOTS = PROJECT_ROOT / "screenshots"
DESKTOP_VIEWPORT = {"width": 1400, "height": 900}
#: The product target for stop → result visible is 2 s; it is measured and printed here, and
#: reported from benchmark runs (speed is not asserted by timed tests, which flake under
#: load). The assertion only guards "it arrives by itself, within seconds".
TARGET_STOP_TO_DESKTOP_MS = 2000
MAX_STOP_TO_DESKTOP_MS = 10000

#: Phone page: note the wall-clock instant its own "stored" report appears (the page sets
#: ``data-last-stored-ms`` = ms from its stop to the desktop's 201, in the same task).
PHONE_PROBE = """
new MutationObserver(() => {
  const b = document.body;
  if (b && b.dataset.lastStoredMs && window.__storedSeenAt === undefined) {
    window.__storedSeenAt = Date.now();
    window.__storedMs = Number(b.dataset.lastStoredMs);
  }
}).observe(document, {attributes: true, subtree: true, attributeFilter: ['data-last-stored-ms']});
"""
#: Desktop page: note the wall-clock instant the result card's text is first rendered visible.
DESKTOP_PROBE = """
window.__cardAt = null;
const probe = new MutationObserver(() => {
  const card = document.querySelector('.auscult-card');
  if (card && card.innerText.trim() && card.checkVisibility({opacityProperty: true})) {
    window.__cardAt = Date.now();
    window.__cardText = card.innerText;
    probe.disconnect();
  }
});
probe.observe(document, {childList: true, subtree: true, characterData: true, attributes: true});
"""


@dataclasses.dataclass(frozen=True)
class Timeline:
    """One pass of the journey; instants are wall-clock ms (``Date.now()`` in the pages)."""

    entry_id: int  # the history row the phone page was given
    stop_at: float  # the phone page stops recording
    upload_at: float  # its upload request starts
    stored_ms: int  # the phone page's own stop → "stored on the desktop" (201) figure
    card_at: float  # the result card's text is rendered visible on the desktop
    card: str  # the card's text, e.g. "Abnormal\nabnormal heart sound — needs review"
    caption: str  # the line above the card: "<file> · phone · site: mitral · <time>"


@pytest.fixture(scope="module")
def analyzer():
    from auscult.analyzer import Analyzer

    return Analyzer()


EXAM = "P-E2E"


def test_phone_recording_appears_analysed_on_the_desktop_by_itself(analyzer, tmp_path):
    wav, name, margin = clear_record(analyzer, LABEL, tmp_path)  # the excerpt the phone plays
    original = get_settings().data_dir / f"training-{name[0]}" / f"{name}.flac"
    expected = analyzer.analyze(original)
    played = analyzer.analyze(wav)

    work = tmp_path / "work"
    work.mkdir()
    env = {"AUSCULT_WORK_DIR": str(work), "AUSCULT_PAIRING_TOKEN": TOKEN}
    settings = settings_from_env({**os.environ, **env})  # what the desktop process reads too
    assert settings.work_dir == work.resolve()
    store = Store(settings.db_path)
    try:
        with recording_page(settings, TOKEN, store) as phone_base:
            phone_url = f"{phone_base}/?t={TOKEN}&exam={EXAM}"  # the QR of an open exam
            with analyzer_app(work, {**env, "AUSCULT_RECORDER_URL": phone_url}) as desktop_url:
                timeline = journey(desktop_url, phone_url, wav)
        entry = store.get(timeline.entry_id)
    finally:
        store.close()

    # (1) the desktop showed the new recording, with the original's label
    assert entry is not None
    assert (entry.source, entry.site, entry.status) == ("phone", SITE, "done")
    assert entry.patient_id == EXAM, "the phone filed it under the exam its QR carried"
    assert entry.filename in timeline.caption, (entry.filename, timeline.caption)
    assert f"patient/exam: {EXAM}" in timeline.caption
    shown_label = timeline.card.split()[0].lower()
    detail = (
        f"{name}: original {expected.label} p={expected.probability:.3f}, played excerpt "
        f"{played.label} p={played.probability:.3f} (margin {margin:.3f}), via the phone "
        f"{entry.label} p={entry.probability:.3f}, desktop card {shown_label!r}, "
        f"threshold {expected.threshold:.3f}"
    )
    print(f"\n{detail}")
    assert shown_label == entry.label == expected.label == played.label == LABEL, detail

    # (2) phone stop → result visible on the desktop
    stop_to_desktop = timeline.card_at - timeline.stop_at
    load = os.getloadavg()[0]
    print(
        f"phone stop → upload starts {timeline.upload_at - timeline.stop_at:.0f} ms, "
        f"→ stored {timeline.stored_ms} ms, → result visible on the desktop "
        f"{stop_to_desktop:.0f} ms (target {TARGET_STOP_TO_DESKTOP_MS} ms; "
        f"1-min load average {load:.2f})"
    )
    assert timeline.stop_at <= timeline.upload_at <= timeline.card_at
    assert stop_to_desktop <= MAX_STOP_TO_DESKTOP_MS, f"{stop_to_desktop:.0f} ms at load {load:.2f}"


def journey(desktop_url: str, phone_url: str, wav: Path) -> Timeline:
    """Open the desktop inbox, record on the phone, wait for the desktop card; the timeline.

    Instants are read inside each page with ``Date.now()``: the two contexts of one browser
    on one machine share that clock.
    """
    args = [*CHROMIUM_ARGS, *FAKE_MEDIA_ARGS, fake_microphone_file_arg(wav)]
    errors: list[str] = []
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        try:
            desktop = browser.new_page(viewport=DESKTOP_VIEWPORT)
            desktop.on("pageerror", lambda e: errors.append(f"desktop: {e}"))
            desktop.add_init_script(DESKTOP_PROBE)
            desktop.goto(f"{desktop_url}/phone")
            desktop.get_by_text("Latest recordings").wait_for(timeout=60_000)
            # The first inbox poll has run with the model loaded: the desktop is waiting.
            desktop.get_by_text("Waiting for the first recording").wait_for(timeout=60_000)
            assert desktop.locator(".auscult-card").count() == 0

            phone = browser.new_context(**PHONE_CONTEXT).new_page()
            phone.on("pageerror", lambda e: errors.append(f"phone: {e}"))
            phone.add_init_script(PHONE_PROBE)
            requests = []
            phone.on("request", lambda r: requests.append(r))
            phone.goto(phone_url)
            phone.wait_for_selector("#link.ok", timeout=15_000)  # paired with the desktop
            assert EXAM in phone.inner_text("#exam")  # the exam the recordings go into
            phone.click(f'[data-site="{SITE}"]')
            phone.click(f'[data-seconds="{RECORD_S}"]')
            phone.click("#record")
            phone.wait_for_selector('body[data-state="recording"]', timeout=15_000)
            phone.wait_for_selector("body[data-last-stored-ms]", timeout=(RECORD_S + 30) * 1000)
            # Nobody touches the desktop: the card must come by itself.
            desktop.wait_for_function("window.__cardAt !== null", timeout=30_000, polling=100)

            stored_seen_at, stored_ms = phone.evaluate("[window.__storedSeenAt, window.__storedMs]")
            card_at, card_text = desktop.evaluate("[window.__cardAt, window.__cardText]")
            uploads = [r for r in requests if "/api/recordings" in r.url and r.method == "POST"]
            assert len(uploads) == 1, [r.url for r in uploads]
            upload = uploads[0]
            upload.response()  # timing is complete once the response has arrived
            entry_id = int(phone.get_attribute("body", "data-last-entry-id"))
            # … and the phone is told what the desktop made of it
            phone.wait_for_selector("body[data-last-answer]", timeout=15_000)
            assert phone.get_attribute("body", "data-last-answer") in (
                "normal",
                "abnormal",
                "unsure",
            )
            assert phone.inner_text("#status").startswith("Sent ✓ — ")
            # The line above the card: "<file name> · phone · site: mitral · <time>".
            caption_text = desktop.get_by_text(f" · phone · site: {SITE}").first.inner_text()
            SCREENSHOTS.mkdir(exist_ok=True)
            phone.screenshot(path=str(SCREENSHOTS / "journey-phone.png"), full_page=True)
            streamlit_screenshot(desktop, SCREENSHOTS / "journey-desktop.png")
        finally:
            browser.close()
    assert errors == [], errors
    return Timeline(
        entry_id=entry_id,
        # The page's own stop instant: it reported "stored" stored_ms after stopping.
        stop_at=stored_seen_at - stored_ms,
        upload_at=upload.timing["startTime"],
        stored_ms=stored_ms,
        card_at=card_at,
        card=card_text,
        caption=caption_text,
    )
