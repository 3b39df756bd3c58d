"""The explanation points at the part of the recording that raised the score, and nowhere else."""

from __future__ import annotations

import math

import numpy as np
import pytest

from auscult.analyzer import Analyzer
from auscult.explain import PHASES, explain
from auscult.plots import explanation_figure, figure_png


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


def explained(analyzer, samples, wav_bytes):
    analysis = analyzer.analyze_detailed(wav_bytes(samples, 8000))
    return analysis.result, explain(analyzer.runner, analysis.model_input, analysis.result)


def test_a_systolic_murmur_is_explained_as_sound_in_systole_at_its_band(
    analyzer, murmur_8k, wav_bytes
):
    result, why = explained(analyzer, murmur_8k, wav_bytes)
    assert result.label == "abnormal"
    assert why.main_phase == "systole"  # the synthetic murmur fills systole only
    low, high = why.main_band
    assert high >= 100, "the band overlaps the murmur's 100–500 Hz"
    assert low <= 500, "the band overlaps the murmur's 100–500 Hz"
    assert why.phase_drop["systole"] > why.phase_drop["diastole"] + 0.2
    assert "systole" in why.sentence(result.label)


def test_a_clean_normal_heart_has_nothing_standing_out(analyzer, heart_8k, wav_bytes):
    result, why = explained(analyzer, heart_8k, wav_bytes)
    assert result.label == "normal"
    assert why.main_phase is None
    assert why.main_band is None
    assert why.sentence(result.label).startswith("No part of the cycle")
    # hiding a band that holds nothing changes nothing
    assert abs(why.band_drop[-1]) < 0.01


def test_without_heart_cycles_only_bands_are_explained(analyzer, noise_8k, wav_bytes):
    _, why = explained(analyzer, noise_8k, wav_bytes)
    assert set(why.phase_drop) == set(PHASES)
    assert all(math.isnan(v) for v in why.phase_drop.values())
    assert len(why.band_drop) == len(why.band_edges_hz) == 6
    assert why.band_edges_hz[0][0] == pytest.approx(25.0)
    assert why.band_edges_hz[-1][1] == pytest.approx(950.0)


def test_explanation_chart_draws_both_views(analyzer, murmur_8k, wav_bytes):
    _, why = explained(analyzer, murmur_8k, wav_bytes)
    fig = explanation_figure(why.phase_drop, why.band_edges_hz, why.band_drop)
    phases, bands = fig.axes
    assert len(phases.patches) == 4
    assert len(bands.patches) == 6
    assert figure_png(fig, dpi=40).startswith(b"\x89PNG")
    empty = explanation_figure(dict.fromkeys(PHASES, np.nan), why.band_edges_hz, why.band_drop)
    assert "no heart cycles" in empty.axes[0].texts[0].get_text()


RUNTIME_ONLY = """
import sys
for name in ("librosa", "sklearn", "tensorflow", "keras"):
    sys.modules[name] = None  # as in `make run`'s environment: not installed
sys.path.insert(0, {root!r})
import dataclasses
from pathlib import Path
from auscult.service import Service
from auscult.synthetic import heart_sound_wav
from config import Settings
svc = Service(dataclasses.replace(Settings(), work_dir=Path({work!r})))
done = svc.analyse_upload(heart_sound_wav(12, 8000, seed=3), "x.wav", patient_id="P-1")
assert svc.explanation(done.result, svc.model_input(done.entry.audio_path))
assert svc.report_pdf(done.entry.id).startswith(b"%PDF")
assert svc.exam_report_pdf("P-1").startswith(b"%PDF")
print("ok")
"""


def test_explanations_and_reports_need_only_the_runtime_packages(tmp_path):
    import subprocess
    import sys

    from config import PROJECT_ROOT

    code = RUNTIME_ONLY.format(root=str(PROJECT_ROOT), work=str(tmp_path / "work"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
