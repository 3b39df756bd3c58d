"""The ECG module: every file format in, clear messages for bad ones, beats and rhythm out,
and the doors (batch CLI, REST API) keeping their contracts."""

from __future__ import annotations

import csv
import dataclasses
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from auscult.ecg.analyzer import EcgAnalysis, EcgAnalyzer
from auscult.ecg.beats import detect_beats
from auscult.ecg.mitdb import read_reference
from auscult.ecg.reading import load_ecg, pick_lead
from auscult.ecg.rhythm import read_rhythm
from auscult.errors import InvalidEcgError
from config import get_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def mitdb() -> Path:
    folder = get_settings().ecg_data_dir
    if not (folder / "100.hea").is_file():
        pytest.skip(f"MIT-BIH Arrhythmia Database not found at {folder}")
    return folder


@pytest.fixture(scope="session")
def strip_100(mitdb) -> np.ndarray:
    """The first 60 s of record 100 (MLII, V5), millivolts at 360 Hz."""
    return load_ecg(mitdb / "100.hea").signal[: 360 * 60]


@pytest.fixture(scope="session")
def analyzer() -> EcgAnalyzer:
    return EcgAnalyzer()


def wfdb_files(tmp_path: Path, signal: np.ndarray, rate: float = 360) -> list[tuple[str, bytes]]:
    import wfdb

    wfdb.wrsamp(
        "rec",
        fs=rate,
        units=["mV", "mV"],
        sig_name=["MLII", "V5"],
        p_signal=signal,
        fmt=["16", "16"],
        write_dir=str(tmp_path),
    )
    return [(n, (tmp_path / n).read_bytes()) for n in ("rec.hea", "rec.dat")]


def apple_csv(lead_i_mv: np.ndarray, rate: float = 512.5) -> bytes:
    """An Apple Health ECG export: header block, then one µV sample per line."""
    import soxr

    x = soxr.resample(lead_i_mv.astype(np.float64), 360, rate) * 1000
    head = (
        'Name,Test Person\nDate of Birth,"Jan 1, 1970"\nRecorded Date,2026-11-30 10:00:00 +0000\n'
        "Classification,Sinus Rhythm\nSymptoms,\nSoftware Version,1.90\n"
        'Device,"Watch6,1"\nSample Rate,512.5 hertz\nLead,Lead I\nUnit,µV\n\n'
    )
    return (head + "\n".join(f"{v:.3f}" for v in x) + "\n").encode()


# ------------------------------------------------------------------------- reading


def test_every_format_reads_to_the_same_millivolts_at_360_hz(tmp_path, strip_100):
    expected = strip_100[:, 0]
    pair = wfdb_files(tmp_path, strip_100[: 360 * 30].astype(np.float64))
    wfdb_rec = load_ecg(pair)
    assert wfdb_rec.leads == ("MLII", "V5")
    assert wfdb_rec.rate == 360
    assert np.allclose(wfdb_rec.signal[:, 0], expected[: 360 * 30], atol=0.01)

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for name, data in pair:
            z.writestr(f"folder/{name}", data)
    assert load_ecg([("rec.zip", archive.getvalue())]).signal.shape == (360 * 30, 2)

    apple = load_ecg([("ecg_2026-11-30.csv", apple_csv(expected))])
    assert apple.leads == ("I",)
    assert apple.source_rate == 512.5
    assert abs(apple.duration_s - 60) < 0.05
    assert (
        np.corrcoef(apple.signal[100:-100, 0], expected[100 : len(apple.signal) - 100])[0, 1] > 0.99
    )

    timed = "time,MLII\n" + "\n".join(f"{i / 360:.6f},{v:.4f}" for i, v in enumerate(expected))
    rec = load_ecg([("strip.csv", timed.encode())])
    assert rec.leads == ("MLII",)
    assert abs(rec.source_rate - 360) < 0.01

    plain = "\n".join(f"{v:.4f}" for v in expected[::2]).encode()  # 180 Hz, rate given
    assert load_ecg([("plain.csv", plain)], rate_hz=180).duration_s == pytest.approx(60, abs=0.05)
    old_mac = plain.replace(b"\n", b"\r")  # lines ended by a bare carriage return
    assert load_ecg([("mac.csv", old_mac)], rate_hz=180).duration_s == pytest.approx(60, abs=0.05)


def test_edf_reads_with_its_units(tmp_path, strip_100):
    import pyedflib

    path = tmp_path / "rec.edf"
    with pyedflib.EdfWriter(str(path), 1, file_type=pyedflib.FILETYPE_EDFPLUS) as w:
        w.setSignalHeaders(
            [
                {
                    "label": "ECG I",
                    "dimension": "uV",
                    "sample_frequency": 360,
                    "physical_max": 5000,
                    "physical_min": -5000,
                    "digital_max": 32767,
                    "digital_min": -32768,
                }
            ]
        )
        w.writeSamples([strip_100[:, 0].astype(np.float64) * 1000])
    rec = load_ecg(path)
    assert rec.leads == ("ECG I",)
    assert np.allclose(rec.signal[:, 0], strip_100[:, 0], atol=0.01)


@pytest.mark.parametrize(
    ("files", "rate", "says"),
    [
        ([("x.csv", b"")], None, "empty"),
        ([("x.csv", b"1\n2\n3\n")], None, "sampling rate"),
        ([("x.csv", b"0.1\n0.2\nhello\n")], 250, "line 3 is not a number"),
        ([("x.csv", b"\r\x01")], 250, "no ECG samples"),
        ([("x.bin", bytes(range(256)) * 40)], None, "not an ECG file"),
        ([("rec.dat", b"\x00" * 100)], None, "without its .hea"),
        ([("x.csv", ("\n".join(["0.5"] * 3000)).encode())], 250, "flat line"),
        ([("x.csv", ("\n".join(["0.1", "0.2"] * 200)).encode())], 250, "at least 5 s"),
        ([("x.csv", ("\n".join(["0.1", "0.2"] * 200)).encode())], 40, "100–2000 Hz"),
        ([("x.zip", b"PK not really")], None, "not a readable zip"),
    ],
)
def test_bad_files_get_a_clear_message(files, rate, says):
    with pytest.raises(InvalidEcgError, match=says):
        load_ecg(files, rate_hz=rate)


def test_a_header_without_its_signal_file_says_what_to_upload(mitdb):
    with pytest.raises(InvalidEcgError, match=r"upload the \.hea together with its \.dat"):
        load_ecg([("100.hea", (mitdb / "100.hea").read_bytes())])


def test_too_long_records_are_refused_before_analysis(settings):
    short = dataclasses.replace(settings, ecg_max_duration_s=60.0)
    data = "\n".join(f"{np.sin(i / 10):.3f}" for i in range(250 * 61)).encode()
    with pytest.raises(InvalidEcgError, match="split it"):
        load_ecg([("long.csv", data)], rate_hz=250, settings=short)


def test_lead_choice_prefers_limb_leads_and_names_the_missing_one():
    assert pick_lead(["V1", "MLII"]) == 1
    assert pick_lead(["V1", "V5"], "v5") == 1
    with pytest.raises(InvalidEcgError, match="no lead called 'II'"):
        pick_lead(["V1", "V5"], "II")


# --------------------------------------------------------------- beats and rhythm


def test_beats_are_found_on_a_real_record(mitdb, strip_100):
    ref = read_reference(mitdb, "100")
    truth = ref.samples[ref.samples < len(strip_100)]
    found = detect_beats(strip_100[:, 0], 360)
    hits = sum(np.min(np.abs(found - t)) <= 54 for t in truth)
    assert hits >= len(truth) - 1
    assert len(found) <= len(truth) + 1


def test_rhythm_reads_bigeminy_pauses_and_irregularity():
    rate = 360
    rr = np.tile([0.5, 1.0], 40)  # premature ventricular beat every other beat
    peaks = (np.cumsum(rr) * rate).astype(int)
    classes = np.array(["V", "N"] * 40)
    r = read_rhythm(
        peaks, classes, rate, peaks[-1] / rate + 1, np.ones(80, bool), np.zeros(80, bool)
    )
    assert "ventricular bigeminy" in r.patterns
    assert r.pvc_burden == pytest.approx(0.5)
    assert r.rhythm == "other"
    assert r.af_burden == 0

    rng = np.random.default_rng(1)
    irregular = rng.uniform(0.4, 1.1, 200)
    peaks = (np.cumsum(irregular) * rate).astype(int)
    n = len(peaks)
    af = read_rhythm(
        peaks, np.array(["N"] * n), rate, peaks[-1] / rate + 1, np.ones(n, bool), np.zeros(n, bool)
    )
    assert af.rhythm == "atrial_fibrillation"
    assert af.af_burden > 0.9
    assert af.af_episodes

    steady = (np.arange(1, 80) * 0.8 * rate).astype(int)
    steady[40:] += int(2.5 * rate)  # a 3.3 s pause
    m = len(steady)
    paused = read_rhythm(
        steady,
        np.array(["N"] * m),
        rate,
        steady[-1] / rate + 1,
        np.ones(m, bool),
        np.zeros(m, bool),
    )
    assert len(paused.pauses_s) == 1
    assert paused.rhythm == "sinus"


def test_a_normal_strip_reads_as_sinus_and_a_lead_off_stretch_as_unsure(analyzer, strip_100):
    from auscult.ecg.reading import EcgRecording

    clean = EcgRecording(strip_100, 360, ("MLII", "V5"), 360.0)
    result = analyzer.analyze(clean)
    assert result.rhythm.rhythm == "sinus"
    assert 60 <= result.rhythm.heart_rate_bpm <= 90
    assert result.quality == 1.0
    assert not result.unsure_stretches

    broken = strip_100.copy()
    broken[360 * 20 : 360 * 40] = 0.0  # electrodes off for 20 s
    off = analyzer.analyze(EcgRecording(broken, 360, ("MLII", "V5"), 360.0))
    assert any("flat line" in why for _, _, why in off.unsure_stretches)
    assert off.quality < 0.75
    judged = EcgAnalysis.from_dict(off.to_dict())
    assert judged.label == off.label
    assert len(judged.beat_times_s) == len(off.beat_times_s)


def test_noise_only_is_unsure_not_a_rhythm(analyzer):
    from auscult.ecg.reading import EcgRecording

    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.5, (360 * 30, 1)).astype(np.float32)
    result = analyzer.analyze(EcgRecording(noise, 360, ("I",), 360.0))
    assert result.label == "unsure"


# ------------------------------------------------------------------------- doors


def test_batch_cli_writes_the_contracted_columns_and_keeps_going(tmp_path, mitdb):
    bad = tmp_path / "broken.csv"
    bad.write_text("not,an,ecg\n")
    out, beats = tmp_path / "records.csv", tmp_path / "beats.csv"
    subprocess.run(
        [
            sys.executable,
            "scripts/ecg_batch.py",
            str(mitdb / "100.hea"),
            str(bad),
            "--output",
            str(out),
            "--beats",
            str(beats),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == [
        "path",
        "duration_s",
        "heart_rate_bpm",
        "rhythm",
        "af_burden",
        "pvc_burden",
        "pac_burden",
        "paced",
        "quality",
        "label",
        "error",
    ]
    assert rows[0]["rhythm"] in {"sinus", "atrial_fibrillation", "other", "unsure"}
    assert rows[0]["paced"] == "false"
    assert rows[0]["error"] == ""
    assert float(rows[0]["duration_s"]) == pytest.approx(1805.6, abs=0.1)
    assert rows[1]["error"]
    assert rows[1]["label"] == ""
    beat_rows = list(csv.DictReader(beats.open()))
    assert list(beat_rows[0]) == ["path", "time_s", "class", "probability"]
    assert 2200 <= len(beat_rows) <= 2300  # record 100 holds 2273 beats
    assert {r["class"] for r in beat_rows} <= {"N", "S", "V", "F", "Q"}


def test_api_analyses_a_wfdb_pair_and_explains_a_bad_upload(tmp_path, settings, strip_100):
    from fastapi.testclient import TestClient

    import api
    from auscult.service import Service

    pair = wfdb_files(tmp_path, strip_100[: 360 * 30].astype(np.float64))
    with TestClient(api.create_app(settings, Service(settings))) as client:
        answer = client.post("/v1/ecg/analyses", files=[("file", (n, d)) for n, d in pair])
        assert answer.status_code == 201, answer.text
        body = answer.json()
        assert body["modality"] == "ecg"
        assert body["rhythm"] == "sinus"
        assert len(body["beats"]) >= 30
        assert body["disclaimer"]
        listed = client.get("/v1/ecg/analyses").json()
        assert listed[0]["id"] == body["id"]
        assert listed[0]["modality"] == "ecg"
        pdf = client.get(f"/v1/ecg/analyses/{body['id']}/report.pdf")
        assert pdf.status_code == 200
        assert pdf.content.startswith(b"%PDF")
        bad = client.post("/v1/ecg/analyses", files=[("file", pair[0])])  # header only
        assert bad.status_code == 422
        assert ".dat" in bad.json()["detail"]


def test_service_keeps_a_readable_ecg_and_nothing_of_a_bad_one(tmp_path, settings, strip_100):
    from auscult.service import Service

    svc = Service(settings)
    pair = wfdb_files(tmp_path, strip_100[: 360 * 20].astype(np.float64))
    entry, analysis, recording = svc.analyse_ecg(pair, patient_id="P-7")
    assert entry.patient_id == "P-7"
    assert entry.result["modality"] == "ecg"
    assert sorted(name for name, _ in entry.files) == ["rec.dat", "rec.hea"]
    again = svc.ecg_recording(svc.ecg_history.get(entry.id))
    assert np.allclose(again.signal, recording.signal)
    assert svc.ecg_entry(entry.id)[1].label == analysis.label
    with pytest.raises(InvalidEcgError):
        svc.analyse_ecg([("rec.hea", pair[0][1])])
    assert [e.id for e in svc.ecg_history.entries()] == [entry.id]
    svc.ecg_history.delete(entry.id)
    assert not Path(entry.folder).exists()
    assert svc.ecg_history.entries() == []
