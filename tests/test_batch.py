"""Batch analysis: the CSV contract, one broken file never stops the run."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from auscult.batch import (
    CSV_COLUMNS,
    BatchRow,
    analyze_many,
    analyze_one,
    audio_paths,
    csv_text,
    write_csv,
)


class FakeResult:
    def __init__(self, probability: float, duration_s: float) -> None:
        self.probability = probability
        self.label = "abnormal" if probability >= 0.5 else "normal"
        self.duration_s = duration_s


class FakeAnalyzer:
    """Reads the file with the real front end, so real errors surface; no model needed."""

    def analyze(self, source):
        import utils

        rec = utils.load_audio(source)
        return FakeResult(min(1.0, float(np.abs(rec.samples).max())), rec.duration_s)


class ExplodingAnalyzer:
    def analyze(self, source):
        raise RuntimeError("disk on fire")


def _wav(path: Path, seconds: float = 5.0, amp: float = 0.3, rate: int = 4000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (amp * np.sin(2 * np.pi * 60 * t)).astype(np.float32), rate)
    return path


def test_csv_columns_are_the_contract():
    assert CSV_COLUMNS[:5] == ("path", "probability", "label", "duration_s", "error")
    assert CSV_COLUMNS[5:] == (  # extended at the end, in order
        "unsure_reason", "quality", "heart_rate_bpm", "site", "warnings", "model_version",
    )  # fmt: skip


def test_broken_file_gets_error_row_and_the_run_goes_on(tmp_path):
    good = _wav(tmp_path / "good.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    short = _wav(tmp_path / "short.wav", seconds=0.5)
    seen = []
    rows = analyze_many(
        [good, bad, short, ("mem.wav", good.read_bytes()), ("empty.wav", b"")],
        FakeAnalyzer(),
        progress=lambda done, total, row: seen.append((done, total, row.path)),
    )
    assert [r.ok for r in rows] == [True, False, False, True, False]
    assert seen[-1][:2] == (5, 5)
    assert len(seen) == 5
    assert rows[0].label == "normal"
    assert rows[0].duration_s == pytest.approx(5.0)
    assert "not a readable audio" in rows[1].error
    assert "0.5 s" in rows[2].error
    assert rows[3].path == "mem.wav"
    assert rows[3].ok
    assert "empty" in rows[4].error
    assert rows[1].probability is None
    assert rows[1].label == ""


def test_unexpected_exception_becomes_a_row(tmp_path):
    row = analyze_one(_wav(tmp_path / "a.wav"), ExplodingAnalyzer())
    assert not row.ok
    assert "disk on fire" in row.error


def test_csv_text_has_header_and_empty_cells_for_errors():
    rows = [
        BatchRow("a.wav", 0.123456, "normal", 12.345, ""),
        BatchRow("b.wav", None, "", None, "the upload is empty (0 bytes)"),
    ]
    parsed = list(csv.reader(io.StringIO(csv_text(rows))))
    assert parsed[0] == list(CSV_COLUMNS)
    assert parsed[1] == ["a.wav", "0.1235", "normal", "12.35", "", "", "", "", "", "", ""]
    assert parsed[2] == ["b.wav", "", "", "", "the upload is empty (0 bytes)"] + [""] * 6


def test_write_csv_to_path(tmp_path):
    out = tmp_path / "r.csv"
    write_csv([BatchRow("a.wav", 0.5, "abnormal", 3.0, "")], out)
    assert out.read_text().splitlines()[0] == ",".join(CSV_COLUMNS)


def test_audio_paths_expands_folders_and_skips_hidden_and_other_files(tmp_path):
    (tmp_path / "sub").mkdir()
    a = _wav(tmp_path / "a.wav")
    b = _wav(tmp_path / "sub" / "b.FLAC")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".x.part").write_bytes(b"x")
    explicit = tmp_path / "notes.txt"
    assert audio_paths([tmp_path]) == [a, b]
    # a file named explicitly is kept, so it gets an error row instead of vanishing
    assert audio_paths([explicit]) == [explicit]


def test_real_analyzer_on_demo_set(tmp_path):
    pytest.importorskip("ai_edge_litert")
    from auscult.analyzer import Analyzer
    from auscult.synthetic import write_demo_set
    from config import Settings

    paths = write_demo_set(tmp_path / "demo")
    analyzer = Analyzer(settings=replace(Settings(), work_dir=tmp_path))
    rows = analyze_many(paths, analyzer)
    assert all(r.ok for r in rows)
    assert all(r.label in {"normal", "abnormal", "unsure"} for r in rows)
    assert all(r.result is not None and r.result.duration_s == r.duration_s for r in rows)


def test_warnings_reach_the_csv(tmp_path, wav_bytes, heart_8k):
    from auscult.analyzer import Analyzer

    data = wav_bytes(heart_8k, 8000)
    truncated = data[: len(data) // 2]  # the header still claims the whole length
    (row,) = analyze_many([("cut.wav", truncated)], Analyzer())
    assert row.label in ("normal", "abnormal", "unsure")
    values = row.csv_values()
    assert "truncated" in values["warnings"]
    assert 0 <= float(values["quality"]) <= 1
    assert values["model_version"] == row.result.model_version
