"""Result-view figures: pure matplotlib, right panels, right colours, any recording length."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from auscult import plots
from config import PROJECT_ROOT

RATE, HOP_S, BAND = 8000, 0.02, (25.0, 950.0)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def inputs(seconds: float, n_windows: int, probs=None):
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(int(seconds * RATE)).astype(np.float32)
    features = rng.standard_normal((32, int(seconds / HOP_S) + 1)).astype(np.float32)
    starts = np.arange(n_windows) * 2.0
    probs = np.linspace(0.1, 0.9, n_windows) if probs is None else np.asarray(probs)
    return signal, features, starts, probs


def test_plots_module_imports_no_ui_code():
    code = "import auscult.plots, sys; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout.strip() == "False"


def test_analysis_figure_has_three_panels_on_one_time_axis():
    signal, features, starts, probs = inputs(20.0, 9)
    fig = plots.analysis_figure(signal, RATE, features, HOP_S, BAND, starts, 4.0, probs, 0.5)
    assert isinstance(fig, Figure)
    wave, spec, timeline = fig.axes[:3]
    assert wave.get_xlim() == spec.get_xlim() == timeline.get_xlim() == (0.0, 20.0)
    assert timeline.get_ylim()[0] <= 0.0
    assert timeline.get_ylim()[1] >= 1.0
    # the threshold line is drawn at the threshold
    assert any(np.allclose(line.get_ydata(), 0.5) for line in timeline.get_lines())
    assert plots.figure_png(fig).startswith(PNG_MAGIC)


@pytest.mark.parametrize(("seconds", "n_windows"), [(3.0, 1), (4.0, 1), (600.0, 299)])
def test_any_length_from_padded_to_ten_minutes(seconds, n_windows):
    signal, features, starts, probs = inputs(seconds, n_windows)
    fig = plots.analysis_figure(signal, RATE, features, HOP_S, BAND, starts, 4.0, probs, 0.6)
    # a padded recording (shorter than one window) still shows the whole window
    assert fig.axes[0].get_xlim()[1] == pytest.approx(max(seconds, starts[-1] + 4.0))
    assert plots.figure_png(fig, dpi=40).startswith(PNG_MAGIC)


def test_waveform_is_shaded_by_window_probability():
    signal, features, starts, _ = inputs(8.0, 3)
    probs = [0.05, 0.5, 0.95]
    fig = plots.analysis_figure(signal, RATE, features, HOP_S, BAND, starts, 4.0, probs, 0.5)
    spans = [p for p in fig.axes[0].patches]
    assert len(spans) >= 3  # one band per stretch between window edges
    first, last = spans[0].get_facecolor(), spans[-1].get_facecolor()
    assert first[1] > first[0], "low probability is green"
    assert last[0] > last[1], "high probability is red"


def test_probability_colour_turns_at_the_threshold():
    green = plots.probability_colour(0.0, 0.7)
    red = plots.probability_colour(1.0, 0.7)
    assert green[1] > green[0]
    assert red[0] > red[1]
    below, above = plots.probability_colour(0.65, 0.7), plots.probability_colour(0.75, 0.7)
    assert below[1] >= below[0] - 0.05
    assert above[0] > above[1]


@pytest.mark.parametrize("label", ["normal", "abnormal", "unsure"])
def test_gauge_shows_probability_in_the_label_colour(label):
    fig = plots.gauge_figure(0.649, 0.653, label)
    texts = {t.get_text(): t for t in fig.axes[0].texts}
    # whole percents would read "65% vs 65%": a decimal tells them apart
    assert "64.9%" in texts
    assert "threshold 65.3%" in texts
    assert to_rgb(texts["64.9%"].get_color()) == to_rgb(plots.LABEL_COLOURS[label])


def test_silent_features_do_not_break_the_colour_scale():
    signal, _, starts, probs = inputs(2.0, 1)
    silent = np.zeros((32, 100), np.float32)
    fig = plots.analysis_figure(signal, RATE, silent, HOP_S, BAND, starts, 4.0, probs, 0.5)
    assert plots.figure_png(fig, dpi=40).startswith(PNG_MAGIC)


def test_unreliable_result_is_drawn_in_grey():
    signal, features, starts, _ = inputs(8.0, 3)
    probs = [0.9, 0.95, 0.99]
    fig = plots.analysis_figure(
        signal, RATE, features, HOP_S, BAND, starts, 4.0, probs, 0.5, reliable=False
    )
    for span in fig.axes[0].patches:
        r, g, b, _ = span.get_facecolor()
        assert max(r, g, b) - min(r, g, b) < 0.05, "grey, not red: noise must not look like disease"


def test_a_recording_too_poor_to_judge_gets_no_needle_and_no_number():
    from auscult.plots import gauge_figure

    fig = gauge_figure(0.77, 0.2, "unsure", reliable=False)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "not judged" in texts
    assert not any("%" in t for t in texts)  # no 77 %, no threshold to anchor on
    assert not fig.axes[0].lines  # no needle


def test_cycle_figure_labels_each_s1_and_s2_in_view_and_shades_the_phases():
    signal = np.zeros(20 * RATE, dtype=np.float32)
    s1 = [0.5 + 0.8 * k for k in range(24)]
    s2 = [t + 0.3 for t in s1]
    fig = plots.cycle_figure(signal, RATE, s1, s2, start_s=2.0, span_s=4.0)
    ax = fig.axes[0]
    assert ax.get_xlim() == (2.0, 6.0)
    labels = [t.get_text() for t in ax.texts]
    in_view = [t for t in s1 if 2.0 <= t <= 6.0]
    assert labels.count("S1") == len(in_view)
    assert labels.count("S2") == len([t for t in s2 if 2.0 <= t <= 6.0])
    colours = {tuple(np.round(p.get_facecolor()[:3], 2)) for p in ax.patches}
    assert len(colours) == 2  # systole and diastole, told apart
    assert "systole shaded" in ax.get_title(loc="left")
    assert plots.figure_png(fig, dpi=40).startswith(PNG_MAGIC)


def test_cycle_figure_says_so_when_no_cycle_was_followed():
    fig = plots.cycle_figure(np.zeros(3 * RATE, np.float32), RATE, (), ())
    assert "no regular S1/S2" in fig.axes[0].get_title(loc="left")
    assert fig.axes[0].get_xlim() == (0.0, 3.0)  # a short recording is shown whole


def test_cycle_view_starts_at_an_s1_that_leaves_a_whole_view():
    assert plots.cycle_view_start([0.05, 0.9, 1.7], 10.0, 4.0) == 0.0
    assert plots.cycle_view_start([1.0, 1.8], 10.0, 4.0) == pytest.approx(0.85)
    assert plots.cycle_view_start([9.0], 10.0, 4.0) == 0.0
