"""Command-line contracts (ARCHITECTURE.md §3): batch CSV, evaluation report, phase-1 check list."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from config import get_settings

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def test_batch_predict_writes_the_contract_and_survives_a_broken_file(tmp_path):
    import soundfile as sf

    from auscult.synthetic import heart_sound

    folder = tmp_path / "in" / "nested"
    folder.mkdir(parents=True)
    sf.write(folder / "good.wav", heart_sound(12.0, 4000, seed=1), 4000)
    (folder / "broken.wav").write_bytes(b"RIFF....not really a wav")
    (tmp_path / "in" / "notes.txt").write_text("ignored: not an audio ending")
    out = tmp_path / "results.csv"
    jsonl = tmp_path / "results.jsonl"
    proc = _run(
        "scripts/batch_predict.py", str(tmp_path / "in"), "--output", str(out),
        "--json", str(jsonl),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with open(out, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames[:5] == ["path", "probability", "label", "duration_s", "error"]
        assert reader.fieldnames[5:] == [
            "unsure_reason", "quality", "heart_rate_bpm", "site", "warnings", "model_version",
        ]  # fmt: skip  # extended at the end only
        rows = {Path(r["path"]).name: r for r in reader}
    assert set(rows) == {"good.wav", "broken.wav"}
    assert rows["good.wav"]["label"] in {"normal", "abnormal", "unsure"}
    assert not rows["good.wav"]["error"]
    assert 0 <= float(rows["good.wav"]["probability"]) <= 1
    assert rows["broken.wav"]["probability"] == ""
    assert rows["broken.wav"]["label"] == ""
    assert rows["broken.wav"]["unsure_reason"] == ""
    assert "not a readable audio recording" in rows["broken.wav"]["error"]
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    by_name = {Path(x["path"]).name: x for x in lines}
    assert by_name["good.wav"]["result"]["label"] == rows["good.wav"]["label"]
    assert len(by_name["good.wav"]["result"]["window_probabilities"]) >= 1
    assert by_name["broken.wav"]["result"] is None
    assert by_name["broken.wav"]["error"] == rows["broken.wav"]["error"]


def test_batch_predict_says_when_there_is_nothing_to_analyse(tmp_path):
    proc = _run("scripts/batch_predict.py", str(tmp_path), "--output", str(tmp_path / "r.csv"))
    assert proc.returncode == 2
    assert "no audio files" in proc.stderr


def test_phase1_validation_passes_on_the_committed_model():
    proc = _run("validation/phase1_validation.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "✔ model files" in proc.stdout
    assert "✔ synthetic prediction" in proc.stdout


@pytest.mark.data
def test_evaluate_reports_metrics_and_plots(tmp_path):
    if not get_settings().data_dir.exists():
        pytest.skip("PhysioNet data not found")
    proc = _run("scripts/evaluate.py", "--limit", "40", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["n_records"] == 40
    for key in ("sensitivity", "specificity", "macc", "auc"):
        assert 0.0 <= report["overall"][key] <= 1.0
    assert {p.name for p in tmp_path.glob("*.png")} == {
        "roc.png", "pr.png", "confusion.png", "reliability.png"
    }  # fmt: skip
    assert 0.0 <= report["ece"] <= 1.0
    unsure = report["unsure"]
    assert unsure["count"] == unsure["too_poor"] + unsure["borderline"]


def test_feature_cache_holds_the_heart_cycle_features_training_reads(tmp_path, physionet_dir):
    """The cache step computes the cycle features once; training then reads, never recomputes."""
    import numpy as np

    from auscult import cache
    from auscult.datasets import read_physionet

    out = tmp_path / "cache"
    proc = _run("scripts/fast_batch_process.py", "--limit", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {"features.npy", "manifest.csv", "cycle_features.npz"} <= {p.name for p in out.iterdir()}
    records = read_physionet(physionet_dir)[:3]
    saved = np.load(out / "cycle_features.npz")
    assert list(saved["names"]) == [r.name for r in records]

    def no_recomputing(*args, **kwargs):
        raise AssertionError("cycle features were computed again")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cache, "_each", no_recomputing)
        np.testing.assert_array_equal(cache.cycle_features_of(records, out), saved["x"])

    # features from an older reading of the heart cycle are computed again, not trusted
    older = dict(saved)
    older["preprocessing"] = np.array(str(saved["preprocessing"]).replace(
        f'"cycle_reading": {cache.READING_VERSION}', '"cycle_reading": 1'
    ))  # fmt: skip
    assert str(older["preprocessing"]) != str(saved["preprocessing"])
    np.savez(out / "cycle_features.npz", **older)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cache, "_each", no_recomputing)
        with pytest.raises(AssertionError, match="computed again"):
            cache.cycle_features_of(records, out)


def test_retrain_from_uploads_keeps_good_rows_and_says_which_it_refused(tmp_path, physionet_dir):
    import csv
    import os

    rows = [("../e.flac", "1"), ("missing.wav", "normal"), ("../e.flac", "murmur")]
    (tmp_path / "e.flac").write_bytes(
        next((physionet_dir / "training-e").glob("*.flac")).read_bytes()
    )
    sub = tmp_path / "sub"
    sub.mkdir()
    with open(sub / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        w.writerows(rows)
    env = {**os.environ, "AUSCULT_WORK_DIR": str(tmp_path / "work")}
    proc = subprocess.run(
        [sys.executable, "scripts/retrain_from_uploads.py", str(sub / "labels.csv"),
         "--who", "tester", "--no-retrain"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "kept 1 labelled recording(s); refused 2" in proc.stdout
    assert "missing.wav" in proc.stderr
    assert "not normal or abnormal" in proc.stderr
