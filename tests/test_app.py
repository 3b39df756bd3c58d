"""The desktop analyzer: every page under AppTest, and the service actions it calls.

AppTest cannot drive ``st.file_uploader``, so uploads are tested through the action the
page calls (``Service.analyse_upload``, fed bytes); the page's own analyse path is driven
through the demo picker, the batch folder input and the inbox folder (analysed by the worker
the app starts when no other worker runs).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from auscult.analyzer import Analyzer
from auscult.errors import InvalidAudioError
from auscult.service import Service
from auscult.store import Store
from config import PROJECT_ROOT, Settings, get_settings
from desktop.resources import find_demo_recordings, stop_workers

APP = str(PROJECT_ROOT / "app.py")
PAGES = ("analyze", "phone", "batch", "history", "monitoring", "model")
TIMEOUT = 30  # seconds per AppTest run; the first one loads the model


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(settings=Settings())


@pytest.fixture
def work(tmp_path, monkeypatch) -> Settings:
    """Point the app (through AUSCULT_WORK_DIR) at an empty work folder."""
    work_dir = tmp_path / "work"
    monkeypatch.setenv("AUSCULT_WORK_DIR", str(work_dir))
    for name in ("AUSCULT_RECORDER_URL", "AUSCULT_PAIRING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield get_settings()
    stop_workers()  # the worker thread the app started for this work folder
    get_settings.cache_clear()


@pytest.fixture
def no_physionet(monkeypatch, tmp_path):
    """Demos from the synthetic set only: keeps the demo list small and data-independent."""
    monkeypatch.setenv("AUSCULT_DATA_DIR", str(tmp_path / "no-data"))
    get_settings.cache_clear()


def run_page(page: str, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.session_state["page"] = page
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.error] + [i.value for i in at.info]
    return "\n".join(str(p) for p in parts)


def table_with(at: AppTest, column: str):
    """The first table on the page that has ``column``."""
    return next(t.value for t in at.dataframe if column in t.value.columns)


def wait_until_analysed(settings: Settings, count: int = 1, timeout: float = 15.0) -> None:
    """Wait for the app's worker thread to finish ``count`` rows (it polls every 0.2 s)."""
    store = Store(settings.db_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len([e for e in store.entries() if e.status in ("done", "error")]) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"not analysed within {timeout} s: {store.entries()}")


def heart_wav(path: Path, wav_bytes, heart_8k, seconds: float = 12.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(heart_8k[: int(seconds * 8000)], 8000))
    old = time.time() - 5  # settled: not being copied any more
    os.utime(path, (old, old))
    return path


# --------------------------------------------------------------------------------------
# every page renders
# --------------------------------------------------------------------------------------
TITLES = {
    "analyze": "Analyze a heart sound",
    "phone": "Phone inbox",
    "batch": "Batch analysis",
    "history": "History",
    "monitoring": "Monitoring",
    "model": "Model card",
}


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_exception(work, no_physionet, page):
    at = run_page(page)
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [TITLES[page]]
    assert not at.error


def test_first_render_is_fast_once_the_model_is_cached(work, no_physionet):
    run_page("analyze")  # loads the model and writes the demo set
    started = time.perf_counter()
    at = run_page("analyze")
    assert not at.exception
    assert time.perf_counter() - started < 2.0


# --------------------------------------------------------------------------------------
# Analyze
# --------------------------------------------------------------------------------------
def test_demo_analysis_shows_result_card_and_is_stored(work, no_physionet):
    at = run_page("analyze")
    demo = at.selectbox(key="demo_choice")
    murmur = next(i for i in demo.options if "murmur" in str(i))
    demo.set_value(demo.options.index(murmur))
    at.button[0].click()
    at.run()
    assert not at.exception
    body = texts(at)
    assert "auscult-card" in body
    assert any(h in body for h in (">Normal<", ">Abnormal<", ">Unsure<"))
    assert "Decision support, not a diagnosis" in body
    assert "Next step" in body
    labels = {m.label for m in at.metric}
    assert {"Chance of abnormal", "Heart rate", "Recording quality", "Duration"} <= labels
    assert at.get("download_button"), "JSON download is offered"
    assert len(at.get("image")) >= 2  # gauge and plots
    entries = Store(work.db_path).entries()
    assert [(e.source, e.status) for e in entries] == [("demo", "done")]


def test_upload_error_is_shown_and_the_app_keeps_working(work, no_physionet):
    at = run_page("analyze", upload_error=("broken.wav", "the upload is empty (0 bytes)"))
    assert "the upload is empty" in at.error[0].value
    at.button[0].click()  # analyse a demo afterwards: the error goes, a result comes
    at.run()
    assert not at.exception
    assert not at.error
    assert "auscult-card" in texts(at)


BAD_INPUTS = {
    "empty": (lambda wav, x: b"", "empty"),
    "corrupt": (
        lambda wav, x: wav(x, 8000)[:60] + b"\x00garbage" * 50,
        "not a readable|ends early|0.0 s long",
    ),
    "not audio": (lambda wav, x: b"%PDF-1.4 this is a document, not audio" * 40, "not a readable"),
    "silent": (lambda wav, x: wav(np.zeros(8000 * 10, np.float32), 8000), "silent"),
    "0.5 s": (lambda wav, x: wav(x[:4000], 8000), r"0\.5 s long"),
    "20 min": (lambda wav, x: wav(np.tile(x[::4], 60), 2000), "20 min long"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_upload_raises_human_message_and_stores_nothing(
    case, settings, analyzer, wav_bytes, heart_8k
):
    make, message = BAD_INPUTS[case]
    svc = Service(settings, analyzer=analyzer)
    with pytest.raises(InvalidAudioError, match=message):
        svc.analyse_upload(make(wav_bytes, heart_8k), f"{case}.wav")
    assert svc.store.entries() == []
    assert not settings.uploads_dir.exists() or not any(settings.uploads_dir.iterdir())


def test_96khz_stereo_upload_is_analysed_with_a_warning(settings, analyzer, wav_bytes, heart_8k):
    from scipy.signal import resample_poly

    x = resample_poly(heart_8k[: 8000 * 10], 12, 1).astype(np.float32)
    stereo = np.stack([x, 0.8 * x], axis=1)
    done = Service(settings, analyzer=analyzer).analyse_upload(
        wav_bytes(stereo, 96000), "stereo.wav"
    )
    assert done.result.sample_rate == 96000
    assert done.result.channels == 2
    assert any("mono" in w for w in done.result.warnings)
    assert Path(done.entry.audio_path).parent == settings.uploads_dir
    assert Path(done.entry.audio_path).name != "stereo.wav"  # the server chooses the name
    assert done.entry.source == "upload"
    assert done.entry.filename == "stereo.wav"


def test_upload_is_fast(settings, analyzer, wav_bytes, heart_8k):
    data = wav_bytes(np.tile(heart_8k, 2)[: 30 * 8000], 8000)
    svc = Service(settings, analyzer=analyzer)
    svc.analyse_upload(data, "warm.wav")
    started = time.perf_counter()
    svc.analyse_upload(data, "30s.wav")
    assert time.perf_counter() - started < 1.0


def test_result_json_round_trips(settings, analyzer, wav_bytes, heart_8k):
    svc = Service(settings, analyzer=analyzer)
    done = svc.analyse_upload(wav_bytes(heart_8k, 8000), "a.wav", patient_id=" P-17 ")
    data = json.loads(svc.export_json(done.entry))
    assert data["result"]["label"] == done.result.label
    assert data["patient_id"] == "P-17"
    assert data["disclaimer"].startswith("Decision support, not a diagnosis")
    assert data["reading"]["next_step"]


# --------------------------------------------------------------------------------------
# Phone inbox
# --------------------------------------------------------------------------------------
def test_phone_page_shows_the_launchers_qr_code(work, no_physionet, monkeypatch):
    url = "https://192.168.1.20:8503/?t=abc123"
    monkeypatch.setenv("AUSCULT_RECORDER_URL", url)
    get_settings.cache_clear()
    at = run_page("phone")
    assert not at.exception
    assert len(at.get("image")) >= 1
    assert any(url in c.value for c in at.code)


def test_phone_page_shows_the_current_pairing_code_and_makes_a_new_one(
    work, no_physionet, monkeypatch
):
    from auscult.pairing import Pairings

    first = Pairings(work).new_code()
    monkeypatch.setenv("AUSCULT_RECORDER_URL", f"https://192.168.1.20:8503/?t={first.token}")
    get_settings.cache_clear()
    at = run_page("phone")
    assert [c.value for c in at.code] == [f"https://192.168.1.20:8503/?t={first.token}"]
    assert "Pairing code valid until" in texts(at)
    at.button(key="new_pairing_code").click()
    at.run()
    assert not at.exception
    second = Pairings(work).current()
    assert second.token != first.token
    assert [c.value for c in at.code] == [f"https://192.168.1.20:8503/?t={second.token}"]


def test_phone_page_carries_the_open_exam_in_the_qr_and_shows_its_sites(
    work, analyzer, no_physionet, monkeypatch, wav_bytes, heart_8k
):
    url = "https://192.168.1.20:8503/?t=abc123"
    monkeypatch.setenv("AUSCULT_RECORDER_URL", url)
    get_settings.cache_clear()
    at = run_page("phone")
    at.text_input(key="phone_exam").set_value("P 17")
    at.run()
    assert [c.value for c in at.code] == [url + "&exam=P+17"]
    assert "nothing recorded yet today" in texts(at)
    svc = Service(work, analyzer=analyzer)
    svc.receive(wav_bytes(heart_8k, 8000), site="mitral", patient_id="P 17")
    svc.process_pending()
    at.run()
    assert not at.exception
    assert "1 of 4 sites" in texts(at)
    assert "not yet recorded: aortic, pulmonic, tricuspid" in texts(at)


def test_phone_page_without_launcher_explains_how_to_pair(work, no_physionet):
    at = run_page("phone")
    assert "launcher.py" in texts(at)


def test_dropped_file_is_analysed_and_opened(work, no_physionet, wav_bytes, heart_8k):
    at = run_page("phone")  # page open: nothing in the inbox yet
    assert "Waiting for the first recording" in texts(at)
    heart_wav(work.inbox_dir / "dropped.wav", wav_bytes, heart_8k)
    wait_until_analysed(work)
    at.run()
    assert not at.exception
    entries = Store(work.db_path).entries()
    assert [(e.source, e.filename, e.status) for e in entries] == [("inbox", "dropped.wav", "done")]
    assert "auscult-card" in texts(at), "the new recording opens in the result view"


def test_inbox_failure_is_stored_with_its_message_and_the_audio_kept(work, no_physionet):
    work.inbox_dir.mkdir(parents=True)
    bad = work.inbox_dir / "broken.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    os.utime(bad, (time.time() - 5, time.time() - 5))
    at = run_page("phone")
    wait_until_analysed(work)
    at.run()
    assert not at.exception
    (entry,) = Store(work.db_path).entries()
    assert entry.status == "error"
    assert "not a readable audio" in entry.error
    assert bad.exists()
    assert "failed" in texts(at)


def test_scan_inbox_skips_hidden_fresh_and_known_files(settings, wav_bytes, heart_8k):
    svc = Service(settings)
    inbox = settings.inbox_dir
    heart_wav(inbox / "a.wav", wav_bytes, heart_8k)
    heart_wav(inbox / ".b.part", wav_bytes, heart_8k)
    heart_wav(inbox / "notes.txt", wav_bytes, heart_8k)
    fresh = inbox / "c.wav"
    fresh.write_bytes(wav_bytes(heart_8k, 8000))  # still being copied
    assert len(svc.scan_inbox()) == 1
    assert svc.scan_inbox() == []  # known now
    old = time.time() - 5
    os.utime(fresh, (old, old))
    assert len(svc.scan_inbox()) == 1
    assert {e.filename for e in svc.store.pending()} == {"a.wav", "c.wav"}


def test_pending_phone_recording_is_analysed(settings, analyzer, wav_bytes, heart_8k):
    svc = Service(settings, analyzer=analyzer)
    delivery = svc.receive(wav_bytes(heart_8k, 8000), site="mitral")
    assert svc.process_pending() == [delivery.entry_id]
    entry = svc.get(delivery.entry_id)
    assert entry.status == "done"
    assert entry.site == "mitral"
    assert entry.elapsed_ms > 0
    again = svc.analysed(entry, arrays=True)
    assert again.model_input is not None
    assert again.entry.site == "mitral"


# --------------------------------------------------------------------------------------
# Batch
# --------------------------------------------------------------------------------------
def test_batch_folder_one_broken_file_the_rest_go_on(
    work, no_physionet, tmp_path, wav_bytes, heart_8k, murmur_8k
):
    folder = tmp_path / "recordings"
    heart_wav(folder / "a.wav", wav_bytes, heart_8k)
    heart_wav(folder / "b.wav", wav_bytes, murmur_8k)
    (folder / "c.wav").write_bytes(b"not audio")
    at = run_page("batch")
    at.text_input(key="batch_folder").set_value(str(folder))
    at.button(key="batch_folder_go").click()
    at.run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["path"]) == [str(folder / n) for n in ("a.wav", "b.wav", "c.wav")]
    assert table["error"].iloc[2]
    assert not table["error"].iloc[0]
    assert {m.label: m.value for m in at.metric}["Failed"] == "1"
    assert at.get("download_button")
    entries = Store(work.db_path).entries(source="batch")
    assert sorted(e.status for e in entries) == ["done", "done", "error"]
    rows = at.session_state["batch_rows"]
    assert [r.entry_id for r in rows] == sorted(e.id for e in entries)
    at.session_state["batch_shown"] = rows[1].entry_id  # what clicking its row does
    at.run()
    assert not at.exception
    assert "auscult-card" in texts(at)
    assert "Heart cycles." in texts(at)


def test_batch_folder_that_does_not_exist(work, no_physionet, tmp_path):
    at = run_page("batch")
    at.text_input(key="batch_folder").set_value(str(tmp_path / "nope"))
    at.button(key="batch_folder_go").click()
    at.run()
    assert not at.exception
    assert "is not a folder" in at.error[0].value


def test_run_batch_keeps_uploaded_audio_and_stores_every_row(
    settings, analyzer, wav_bytes, heart_8k
):
    svc = Service(settings, analyzer=analyzer)
    seen = []
    rows = svc.run_batch(
        [("a.wav", wav_bytes(heart_8k, 8000)), ("empty.wav", b"")],
        progress=lambda done, total, row: seen.append(done),
    )
    assert [r.ok for r in rows] == [True, False]
    assert seen == [1, 2]
    entries = {e.filename: e for e in svc.store.entries(source="batch")}
    assert Path(entries["a.wav"].audio_path).is_file()
    assert entries["empty.wav"].status == "error"
    assert "empty" in entries["empty.wav"].error


# --------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------
@pytest.fixture
def history(work, analyzer, wav_bytes, heart_8k):
    svc = Service(work, analyzer=analyzer)
    up = svc.analyse_upload(wav_bytes(heart_8k, 8000), "kept.wav", site="aortic")
    svc.store.record(source="batch", filename="bad.wav", error="the upload is empty (0 bytes)")
    return svc.store, up


def test_history_lists_filters_and_reopens(history, no_physionet):
    _store, up = history
    at = run_page("history")
    assert not at.exception
    assert len(at.dataframe[0].value) == 2
    at.selectbox(key="hist_source").set_value("upload")
    at.run()
    assert list(at.dataframe[0].value["file"]) == ["kept.wav"]
    at.selectbox(key="hist_source").set_value("all")
    at.selectbox(key="hist_label").set_value("failed")
    at.run()
    assert list(at.dataframe[0].value["file"]) == ["bad.wav"]
    at.selectbox(key="hist_label").set_value("all")
    at.selectbox(key="hist_site").set_value("aortic")
    at.run()
    assert list(at.dataframe[0].value["file"]) == ["kept.wav"]
    at.selectbox(key="hist_site").set_value("all")
    at.text_input(key="hist_search").set_value("KEPT")  # any case, part of the name
    at.run()
    assert list(at.dataframe[0].value["file"]) == ["kept.wav"]
    at.text_input(key="hist_search").set_value("")
    at.run()
    at.session_state["history_shown"] = up.entry.id  # what clicking its row does
    at.run()
    assert not at.exception
    assert "auscult-card" in texts(at)
    assert "Heart cycles." in texts(at)
    assert len(at.get("image")) >= 1


def test_an_outcome_confirmed_in_history_is_kept_for_retraining(history, no_physionet):
    from auscult.clinic_data import ClinicData

    _store, up = history
    at = run_page("history", history_shown=up.entry.id)
    at.radio(key="history-truth").set_value("abnormal")
    at.text_input(key="history-evidence").set_value("echocardiogram")
    at.text_input(key="history-who").set_value("Dr Ng")
    at.button(key="history-confirm").click()
    at.run()
    assert not at.exception
    (kept,) = ClinicData(get_settings()).items()
    assert (kept.analysis_id, kept.label, kept.who, kept.evidence) == (
        up.entry.id, "abnormal", "Dr Ng", "echocardiogram"
    )  # fmt: skip
    assert any("Outcome confirmed: abnormal — Dr Ng" in e.label for e in at.expander)


def test_history_groups_an_exam_and_compares_it_with_earlier_ones(
    work, analyzer, wav_bytes, heart_8k, no_physionet
):
    svc = Service(work, analyzer=analyzer)
    for site in ("aortic", "mitral"):
        svc.analyse_upload(wav_bytes(heart_8k, 8000), f"{site}.wav", site=site, patient_id="P-5")
    old = svc.analyse_upload(wav_bytes(heart_8k, 8000), "old.wav", site="mitral", patient_id="P-5")
    with svc.store._tx() as c:  # that one was recorded a month ago
        c.execute("UPDATE analyses SET created_at=? WHERE id=?", ("2026-10-30T09:00:00+00:00",
                                                               old.entry.id))  # fmt: skip
    at = run_page("history")
    at.segmented_control(key="hist_view").set_value("Exams")
    at.run()
    assert not at.exception
    shown = texts(at)
    assert "**P-5**" in shown
    assert "not yet recorded: pulmonic, tricuspid" in shown
    assert "Earlier exams of this id" in shown
    assert "2026-10-30" in shown
    assert [list(t.value["site"]) for t in at.dataframe] == [["aortic", "mitral"], ["mitral"]]


def test_history_survives_a_restart(history):
    store, up = history
    again = Store(store.path)  # a new process opens the same database
    assert again.get(up.entry.id).result["label"] == up.result.label


def test_history_delete_removes_entry_and_owned_audio(history, no_physionet):
    store, up = history
    at = run_page("history", history_shown=up.entry.id)
    at.button(key="hist_delete").click()
    at.run()
    assert not at.exception
    assert store.get(up.entry.id) is None
    assert not Path(up.entry.audio_path).exists()
    assert len(at.dataframe[0].value) == 1


def test_deleted_inbox_file_is_not_registered_again(settings, wav_bytes, heart_8k):
    svc = Service(settings)
    heart_wav(settings.inbox_dir / "x.wav", wav_bytes, heart_8k)
    (entry_id,) = svc.scan_inbox()
    svc.delete(entry_id)
    assert svc.scan_inbox() == []


def test_reopen_without_audio_shows_result_without_plots(settings, analyzer, wav_bytes, heart_8k):
    svc = Service(settings, analyzer=analyzer)
    up = svc.analyse_upload(wav_bytes(heart_8k, 8000), "gone.wav")
    Path(up.entry.audio_path).unlink()
    again = svc.analysed(svc.get(up.entry.id), arrays=True)
    assert again.model_input is None
    assert again.result == up.result


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------
def test_model_page_shows_metrics_and_limits(work, no_physionet):
    at = run_page("model")
    assert not at.exception
    body = texts(at)
    assert "Not validated for children or neonates" in body
    assert "Phone recordings are outside the training distribution" in body
    assert len(at.dataframe) >= 1
    assert {"Se", "Sp", "MAcc", "AUC"} <= set(at.dataframe[0].value.columns)


def test_model_page_lists_versions_and_switches_the_serving_one(work, no_physionet):
    from auscult.model_card import load_card
    from auscult.registry import Registry

    registry = Registry(work)
    registry.ensure()
    card = load_card(work).to_dict()
    card["version"] = "2099.02.01-0000"
    registry.register(work.tflite_path, card)
    at = run_page("model")
    assert not at.exception
    versions = table_with(at, "serving")
    assert list(versions["version"]) == [load_card(work).version, "2099.02.01-0000"]
    at.selectbox(key="model_switch").set_value("2099.02.01-0000")
    at.text_input(key="model_switch_why").set_value("clinic set")
    at.button(key="model_switch_go").click()
    at.run()
    assert not at.exception
    assert registry.active_name() == "2099.02.01-0000"
    assert registry.history()[-1]["why"] == "clinic set"
    assert at.metric[0].value == "2099.02.01-0000"  # the card shown is the serving one


def test_model_page_shows_the_last_retraining_and_its_comparison(work, no_physionet):
    from auscult import retrain

    def side(auc):
        part = {
            "auc": auc,
            "sensitivity": 0.9,
            "specificity": 0.7,
            "n": 4,
            "threshold": 0.5,
            "tp": 2,
            "fn": 0,
            "tn": 1,
            "fp": 1,
            "labels": [1, 1, 0, 0],
            "probabilities": [0.9, 0.6, 0.7, 0.1],
        }
        return {"fixed": part, "clinic": {**part, "auc": auc - 0.1}}

    report = {
        "base": "v1",
        "candidate": "v2-clinic",
        "promoted": False,
        "decision": "kept as a candidate: no better on the clinic's held-out recordings",
        "before": side(0.9),
        "after": side(0.88),
    }
    retrain._write_status(
        work,
        retrain.Status("done", "done", 1.0, "2026-11-30T10:00:00", 1, report["decision"], report),
    )
    at = run_page("model")
    assert not at.exception
    assert "v2-clinic kept as a candidate" in texts(at)
    table = next(t.value for t in at.dataframe if {"version", "TP"} <= set(t.value.columns))
    assert list(table["version"]) == ["serving", "serving", "new", "new"]
    assert at.button(key="retrain_start")  # none running: it can be started


def test_model_page_shows_lodo_folds_and_evaluation_plots(
    work, no_physionet, tmp_path, monkeypatch
):
    from matplotlib.figure import Figure

    models = tmp_path / "models"
    (models / "evaluation").mkdir(parents=True)
    meta = json.loads((PROJECT_ROOT / "models" / "metadata.json").read_text())
    fold = {"n": 10, "n_abnormal": 3, "sensitivity": 0.8, "specificity": 0.7, "macc": 0.75,
            "auc": 0.8}  # fmt: skip
    meta["metrics"]["lodo"] = {"folds": {"a": fold, "b": fold}, "mean_macc": 0.75, "mean_auc": 0.8}
    (models / "metadata.json").write_text(json.dumps(meta))
    Figure().savefig(models / "evaluation" / "roc.png")
    monkeypatch.setenv("AUSCULT_MODELS_DIR", str(models))
    get_settings.cache_clear()
    at = run_page("model")
    assert not at.exception
    lodo = table_with(at, "held-out database")
    assert list(lodo["held-out database"]) == ["training-a", "training-b"]
    assert "Mean over held-out databases: MAcc 0.75" in texts(at)
    assert len(at.get("image")) == 1


def test_model_page_shows_calibration_phone_simulation_speed_and_experiments(
    work, no_physionet, tmp_path, monkeypatch
):
    models = tmp_path / "models"
    (models / "evaluation").mkdir(parents=True)
    meta = json.loads((PROJECT_ROOT / "models" / "metadata.json").read_text())
    meta["calibration"] = {"method": "platt", "slope": 1.2, "intercept": -0.3,
                           "ece": {"test": 0.031, "test_raw": 0.12}}  # fmt: skip
    meta["borderline"] = {"low": 0.3, "high": 0.42, "share": 0.1}
    (models / "metadata.json").write_text(json.dumps(meta))
    noisy = {"auc": 0.85, "plain": {}, "unsure_half_right": {"unsure_share": 0.2}}
    phone = {"records": "test split, 2 records (1 abnormal)", "noise_only_unsure_share": 0.93,
             "conditions": {"stethoscope": {"auc": 0.9, "plain": {}, "unsure_half_right": {}},
                            "phone, 10 dB": noisy}}  # fmt: skip
    (models / "evaluation" / "phone_simulation.json").write_text(json.dumps(phone))
    bench = {"warm_ms_30s_flac_2khz": 14.2, "warm_ms_30s_wav_48khz": 19.5, "cold_start_s": 1.3,
             "model_bytes": 102616}  # fmt: skip
    (models / "evaluation" / "benchmark.json").write_text(json.dumps(bench))
    (models / "experiments.md").write_text("| change | result |\n| --- | --- |\n| PCEN | no |\n")
    monkeypatch.setenv("AUSCULT_MODELS_DIR", str(models))
    get_settings.cache_clear()
    at = run_page("model")
    assert not at.exception
    body = texts(at)
    assert "expected calibration error on the test records **0.031**" in body
    assert "Between **30% and 42%** a result is *unsure — borderline*" in body
    assert "Noise-only phone recordings judged unsure: 93%" in body
    assert "a whole 30 s recording in 14 ms (2 kHz stethoscope file) and 20 ms" in body
    phone_table = at.dataframe[-1].value
    assert list(phone_table["condition"]) == ["stethoscope", "phone, 10 dB"]
    assert "PCEN" in body


def test_model_page_leaves_out_the_noise_only_share_when_none_were_simulated(
    work, no_physionet, tmp_path, monkeypatch
):
    models = tmp_path / "models"
    (models / "evaluation").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "models" / "metadata.json", models / "metadata.json")
    clean = {"auc": 0.9, "plain": {}, "unsure_half_right": {}}
    phone = {"records": "test split, 2 records (1 abnormal)", "noise_only": {},
             "conditions": {"stethoscope": clean}}  # fmt: skip
    (models / "evaluation" / "phone_simulation.json").write_text(json.dumps(phone))
    monkeypatch.setenv("AUSCULT_MODELS_DIR", str(models))
    get_settings.cache_clear()
    at = run_page("model")
    assert not at.exception
    assert "test split, 2 records (1 abnormal)." in texts(at)
    assert "Noise-only phone recordings" not in texts(at)


def test_missing_model_is_a_clear_error_and_other_pages_work(
    work, no_physionet, tmp_path, monkeypatch
):
    empty = tmp_path / "no-models"
    empty.mkdir()
    monkeypatch.setenv("AUSCULT_MODELS_DIR", str(empty))
    get_settings.cache_clear()
    at = run_page("analyze")
    assert not at.exception
    assert "model" in at.error[0].value.lower()
    assert not run_page("history").exception
    assert not run_page("model").exception


def test_demo_list_labels_physionet_records(settings, physionet_dir):
    demos = find_demo_recordings(dataclasses.replace(settings, data_dir=physionet_dir))
    refs = {d.reference for d in demos if d.reference}
    assert refs == {"normal", "abnormal"}
    assert any(d.title.startswith("Synthetic") for d in demos)
    assert all(d.path.is_file() for d in demos)


def test_demo_list_without_synthetic_module_still_works(settings, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "auscult.synthetic", None)  # import fails
    demos = find_demo_recordings(dataclasses.replace(settings, data_dir=Path("/nonexistent")))
    assert demos == []
    shutil.rmtree(settings.work_dir, ignore_errors=True)


def test_a_2khz_physionet_recording_plays_as_an_8khz_wav(work, physionet_dir, monkeypatch):
    import io

    import soundfile as sf

    monkeypatch.setenv("AUSCULT_DATA_DIR", str(physionet_dir))
    get_settings.cache_clear()
    at = run_page("analyze")
    demo = at.selectbox(key="demo_choice")
    physionet = next(i for i, t in enumerate(demo.options) if "PhysioNet" in str(t))
    demo.set_value(physionet)
    at.run()
    at.button[0].click()  # analyse it: the result view has its own player and a bell toggle
    at.run()
    assert not at.exception
    players = at.get("audio")
    assert len(players) == 3  # the demo picker's, the result's and the cycle view's 4 s
    at.toggle(key="analyze-bell").set_value(True)
    at.run()
    assert not at.exception
    from desktop.result_view import listening_wav

    wav = listening_wav(str(next(physionet_dir.glob("training-a/*.flac"))), bell=True)
    assert sf.info(io.BytesIO(wav)).samplerate == 8000


def test_phone_results_carry_a_device_note_and_a_poor_recording_shows_no_number(
    work, no_physionet, analyzer, wav_bytes, heart_8k, noise_8k
):
    svc = Service(work, analyzer=analyzer)
    phone = svc.receive(wav_bytes(heart_8k, 8000), site="mitral")
    svc.process_pending()
    at = run_page("history", history_shown=phone.entry_id)
    assert not at.exception
    assert any("Recorded with a phone" in i.value for i in at.info)

    poor = svc.analyse_upload(wav_bytes(noise_8k, 8000), "noise.wav")
    assert not poor.result.reliable
    at = run_page("history", history_shown=poor.entry.id)
    assert not at.exception
    chance = next(m for m in at.metric if m.label == "Chance of abnormal")
    assert chance.value == "—"
    assert not any("Recorded with a phone" in i.value for i in at.info)
