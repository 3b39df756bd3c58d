"""Real-browser ECG journey: upload a WFDB record (header + signal file) and an
Apple-Health-style CSV built from another record on the ECG page → strip with coloured beats,
rhythm figures, the beat explanation and the PDF button; bad input → a clear message.
Screenshots under ``screenshots/``."""

from __future__ import annotations

import numpy as np
import pytest
from chromium import CHROMIUM, CHROMIUM_ARGS, require_chromium, streamlit_screenshot
from servers import analyzer_app

from config import PROJECT_ROOT, get_settings

pytestmark = pytest.mark.e2e

SCREENSHOTS = PROJECT_ROOT / "screenshots"

require_chromium()
playwright_sync = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def mitdb():
    folder = get_settings().ecg_data_dir
    if not (folder / "100.hea").is_file():
        pytest.skip(f"MIT-BIH Arrhythmia Database not found at {folder}")
    return folder


@pytest.fixture(scope="module")
def apple_csv(mitdb, tmp_path_factory):
    """Two minutes of record 201 (atrial fibrillation), as Apple Health exports lead I."""
    import soxr

    from auscult.ecg.reading import load_ecg

    lead = load_ecg(mitdb / "201.hea").signal[: 360 * 60 * 2, 0]  # AF from 0 to 6.3 min
    x = soxr.resample(lead.astype(np.float64), 360, 512.5) * 1000
    path = tmp_path_factory.mktemp("ecg") / "ecg_2026-11-30.csv"
    head = "Name,Test\nSample Rate,512.5 hertz\nLead,Lead I\nUnit,µV\n\n"
    path.write_text(head + "\n".join(f"{v:.2f}" for v in x) + "\n")
    return path


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with analyzer_app(tmp_path_factory.mktemp("ecg-e2e")) as url:
        with playwright_sync.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                tab = browser.new_page(viewport={"width": 1400, "height": 900})
                tab.goto(f"{url}/ecg")
                tab.get_by_role("button", name="Analyse ECG").wait_for(timeout=60_000)
                yield tab
            finally:
                browser.close()


def upload(page, *paths) -> None:
    page.locator("input[type=file]").first.set_input_files([str(p) for p in paths])
    for path in paths:  # every file has reached the server before the form is sent
        page.get_by_text(path.name, exact=True).first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Analyse ECG").click()


def test_wfdb_record_shows_strip_rhythm_and_report(page, mitdb):
    upload(page, mitdb / "100.hea", mitdb / "100.dat")
    page.get_by_text("Looks normal").or_(page.get_by_text("Needs a look")).first.wait_for(
        timeout=90_000
    )
    page.get_by_text("Heart rate").first.wait_for()
    page.get_by_text("Strip start (s)").wait_for()
    page.get_by_text("shaded parts changed").wait_for()
    page.get_by_role("button", name="Download PDF report").wait_for()
    assert "sinus" in page.locator("[data-testid=stMetric]").nth(1).inner_text()
    streamlit_screenshot(page, SCREENSHOTS / "app-ecg.png")


def test_apple_health_export_reads_atrial_fibrillation(page, apple_csv):
    upload(page, apple_csv)
    # Wait on the rhythm figure itself: the words can show elsewhere on the page while the
    # figure still holds the previous record's "sinus".
    rhythm = page.locator("[data-testid=stMetric]").nth(1)
    playwright_sync.expect(rhythm).to_contain_text("atrial fibrillation", timeout=60_000)
    streamlit_screenshot(page, SCREENSHOTS / "app-ecg-apple.png")


def test_a_header_alone_says_what_is_missing(page, mitdb):
    upload(page, mitdb / "100.hea")
    page.get_by_text("upload the .hea together with its .dat").wait_for(timeout=30_000)
