"""The retraining journey in a real browser: labelled files in, retrain, watch, compare,
switch the serving version, see it in a new analysis, switch back.

The app runs with a small retraining (one epoch on a 240-record subset of PhysioNet) so the
journey takes about two minutes on two cores; the code path is the product's.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from chromium import CHROMIUM, CHROMIUM_ARGS, require_chromium
from servers import analyzer_app

from auscult.datasets import read_physionet
from auscult.model_card import load_card
from auscult.registry import Registry
from config import get_settings, settings_from_env

pytestmark = pytest.mark.e2e

require_chromium()
playwright_sync = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def labelled(physionet_dir):
    """Six abnormal and six normal training-e recordings: a clinic's labelled uploads."""
    records = read_physionet(physionet_dir, ["e"])
    abnormal = [str(r.path) for r in records if r.label][:6]
    normal = [str(r.path) for r in records if not r.label][:6]
    return abnormal, normal


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the Streamlit selectbox labelled ``label`` (if not shown already)."""
    box = page.get_by_test_id("stSelectbox").filter(has_text=label)
    shown = box.locator("input")
    if shown.input_value() == option:
        return
    box.get_by_role("button", name="Open").click()
    page.get_by_role("option", name=option, exact=True).click()
    page.wait_for_function(
        "([el, want]) => el.value === want", arg=[shown.element_handle(), option]
    )


def add_files(page, files: list[str], label: str) -> None:
    form = page.locator('[data-testid="stForm"]')
    form.locator("input[type=file]").set_input_files(files)
    for name in {Path(f).name for f in files}:  # every upload reached the server
        form.get_by_text(name).first.wait_for(timeout=60_000)
    choose(page, "Label (all files)", label)
    form.get_by_label("Who labelled them").fill("e2e clinician")
    form.get_by_role("button", name="Add", exact=True).click()
    page.get_by_text(f"{len(files)} recording(s) kept as {label}.").wait_for(timeout=180_000)


def test_retrain_compare_switch_analyse_and_roll_back(tmp_path, labelled):
    abnormal, normal = labelled
    work = tmp_path / "work"
    work.mkdir()
    env = {"AUSCULT_RETRAIN_EPOCHS": "1", "AUSCULT_RETRAIN_LIMIT": "240"}
    settings = settings_from_env({"AUSCULT_WORK_DIR": str(work), **env})
    committed = load_card(get_settings()).version
    with analyzer_app(work, env) as url, playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/model")
            page.get_by_role("heading", name="Clinic recordings for retraining").wait_for(
                timeout=60_000
            )
            add_files(page, abnormal, "abnormal")
            add_files(page, normal, "normal")

            page.get_by_role("button", name="Retrain").click()
            # the progress bar's label (not the word inside the model card's notes)
            page.get_by_text(re.compile(r"^Retraining: ")).first.wait_for(timeout=60_000)
            page.get_by_text("Last retraining").wait_for(timeout=600_000)
            summary = (
                page.get_by_test_id("stMarkdownContainer")
                .filter(has_text="Last retraining")
                .inner_text()
            )
            assert "promoted" in summary or "kept as a candidate" in summary, summary
            page.get_by_test_id("stDataFrame").last.wait_for()  # the comparison table
            page.get_by_role("img").last.wait_for()  # the ROC curves
            registry = Registry(settings)
            candidate = next(v.name for v in registry.versions() if v.name != committed)

            if registry.active_name() != candidate:  # the rule kept it: promote by hand
                choose(page, "Serve instead", candidate)
                page.get_by_label("Why").fill("clinic recordings, checked by hand")
                page.get_by_role("button", name="Switch").click()
                page.get_by_text("serves from the next analysis on").wait_for(timeout=30_000)
            assert Registry(settings).active_name() == candidate

            page.goto(url)  # a new analysis shows the new version
            page.get_by_role("button", name="Analyse demo").wait_for(timeout=60_000)
            page.locator("input[type=file]").first.set_input_files(normal[-1])
            page.locator(".auscult-card").wait_for(timeout=60_000)
            page.get_by_text(f"Model {candidate}.").wait_for(timeout=30_000)

            page.goto(f"{url}/model")  # roll back to the committed model
            page.get_by_role("heading", name="Versions").wait_for(timeout=60_000)
            choose(page, "Serve instead", committed)
            page.get_by_role("button", name="Switch").click()
            page.get_by_text(f"Model {committed} serves").wait_for(timeout=30_000)
            assert Registry(settings).active_name() == committed
        finally:
            browser.close()
