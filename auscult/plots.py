"""Figures for the result view: pictures a clinician would rather look at than read.

Pure functions returning :class:`matplotlib.figure.Figure` objects, built without pyplot
(no global state, safe in a multi-threaded server) and without any UI import:

- :func:`analysis_figure` — three panels on one time axis: the waveform with every stretch
  shaded by the probability of the analysis windows covering it, the log-mel spectrogram,
  and the per-window probability timeline with the decision threshold;
- :func:`cycle_figure` — a few seconds of the waveform with every S1 and S2 marked and
  systole and diastole shaded: where a clinician looks for a murmur;
- :func:`explanation_figure` — how much the score falls when each phase of the heart cycle
  or each band is hidden (occlusion, ``auscult.explain``);
- :func:`comparison_figure` — ROC curves of the serving version and a retrained candidate,
  side by side on the fixed set and on the clinic's held-out recordings;
- :func:`gauge_figure` — the record-level probability against the threshold;
- :func:`figure_png` — render a figure to PNG bytes (for caching and downloads).

Colours: green below the threshold (normal), red above it (abnormal), amber for "unsure".
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LinearSegmentedColormap, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Wedge

from auscult.reading import percent_pair

__all__ = [
    "LABEL_COLOURS",
    "analysis_figure",
    "comparison_figure",
    "cycle_figure",
    "cycle_view_start",
    "explanation_figure",
    "figure_png",
    "gauge_figure",
    "probability_colour",
]

#: One colour per label, used by the plots and the app's result card.
LABEL_COLOURS = {"normal": "#2b8a3e", "abnormal": "#c92a2a", "unsure": "#e8890c"}
_GREEN, _RED, _AMBER = (
    LABEL_COLOURS["normal"],
    LABEL_COLOURS["abnormal"],
    LABEL_COLOURS["unsure"],
)
_INK = "#343a40"  # text and waveform
_MUTED = "#868e96"  # axes, grid and secondary text
_GRID = "#e9ecef"
_PROB_CMAP = LinearSegmentedColormap.from_list(
    "auscult_probability", ["#69db7c", "#d8f5a2", "#fff3bf", "#ffc9c9", "#fa5252"]
)
_UNRELIABLE = "#ced4da"  # grey: probabilities of a recording too poor to judge
_UNRELIABLE_NOTE = " — recording too poor to judge; shown for reference only"
_MAX_WAVE_BINS = 3000  # min/max envelope bins: enough for any screen, fast for 10 minutes


def _norm(threshold: float) -> TwoSlopeNorm:
    """Colour scale with its neutral point at the decision threshold."""
    return TwoSlopeNorm(vmin=0.0, vcenter=float(np.clip(threshold, 0.02, 0.98)), vmax=1.0)


def probability_colour(probability: float, threshold: float) -> tuple[float, float, float, float]:
    """RGBA colour of a probability: green below the threshold, red above, pale near it."""
    return _PROB_CMAP(_norm(threshold)(float(np.clip(probability, 0.0, 1.0))))


def _style(ax: Axes) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(_MUTED)
    ax.tick_params(colors=_MUTED, labelsize=8, length=3)
    ax.yaxis.label.set_color(_MUTED)
    ax.xaxis.label.set_color(_MUTED)
    ax.title.set_color(_INK)


def _title(ax: Axes, text: str) -> None:
    ax.set_title(text, loc="left", fontsize=10, color=_INK, pad=4)


def _covering_segments(
    starts: np.ndarray, window_s: float, probs: np.ndarray
) -> list[tuple[float, float, float]]:
    """Split time at every window edge; each piece gets the mean probability of its windows."""
    edges = np.unique(np.r_[starts, starts + window_s])
    segments = []
    for a, b in itertools.pairwise(edges):
        mid = (a + b) / 2
        covering = probs[(starts <= mid) & (mid < starts + window_s)]
        if covering.size:
            segments.append((float(a), float(b), float(covering.mean())))
    return segments


def _time_extent(n_samples: int, rate: int, starts: np.ndarray, window_s: float) -> float:
    end = n_samples / rate
    if starts.size:
        end = max(end, float(starts[-1]) + window_s)
    return end


def draw_waveform(
    ax: Axes,
    signal: np.ndarray,
    rate: int,
    window_starts_s: Sequence[float],
    window_s: float,
    window_probabilities: Sequence[float],
    threshold: float,
    *,
    reliable: bool = True,
) -> None:
    """Waveform (min/max envelope) over background bands coloured by window probability.

    An unreliable result (``reliable=False``) gets grey bands: noise must not look like disease.
    """
    x = np.asarray(signal, dtype=np.float32)
    starts = np.asarray(window_starts_s, dtype=np.float64)
    probs = np.asarray(window_probabilities, dtype=np.float64)
    norm = _norm(threshold)
    for a, b, p in _covering_segments(starts, window_s, probs):
        colour = _PROB_CMAP(norm(p)) if reliable else _UNRELIABLE
        ax.axvspan(a, b, color=colour, alpha=0.35, lw=0, zorder=0)
    if x.size:
        n_bins = min(_MAX_WAVE_BINS, x.size)
        per_bin = x.size // n_bins
        trimmed = x[: n_bins * per_bin].reshape(n_bins, per_bin)
        t = (np.arange(n_bins) + 0.5) * per_bin / rate
        ax.fill_between(t, trimmed.min(axis=1), trimmed.max(axis=1), color=_INK, lw=0.4, zorder=2)
        peak = float(np.percentile(np.abs(x), 99.9)) or 1.0
        ax.set_ylim(-1.1 * peak, 1.1 * peak)
    ax.set_yticks([])
    ax.set_xlim(0, _time_extent(x.size, rate, starts, window_s))
    _style(ax)
    ax.spines["left"].set_visible(False)


def draw_spectrogram(
    ax: Axes,
    features: np.ndarray,
    hop_s: float,
    band_hz: tuple[float, float],
    xlim: float | None = None,
) -> None:
    """Log-mel spectrogram ``(n_mels, n_frames)`` on a seconds axis, frequency in Hz.

    Below 1 kHz the (Slaney) mel scale is linear in Hz, so the bands can be drawn evenly
    between ``band_hz``.
    """
    f = np.asarray(features, dtype=np.float32)
    # The median as the floor hides the noise between beats; heart sounds stand out dark.
    lo, hi = np.percentile(f, [50, 99.5]) if f.size else (0.0, 1.0)
    ax.imshow(
        f,
        origin="lower",
        aspect="auto",
        cmap="bone_r",
        vmin=lo,
        vmax=hi if hi > lo else lo + 1,
        extent=(0.0, f.shape[1] * hop_s, band_hz[0], band_hz[1]),
        interpolation="nearest",
        zorder=1,
    )
    ax.set_ylabel("Hz", fontsize=8)
    ax.set_yticks([t for t in (100, 250, 500, 750) if band_hz[0] < t < band_hz[1]])
    if xlim is not None:
        ax.set_xlim(0, xlim)
    _style(ax)


def draw_timeline(
    ax: Axes,
    window_starts_s: Sequence[float],
    window_s: float,
    window_probabilities: Sequence[float],
    threshold: float,
    xlim: float | None = None,
    *,
    reliable: bool = True,
) -> None:
    """Each window's probability as a bar spanning its time, a line through the centres."""
    starts = np.asarray(window_starts_s, dtype=np.float64)
    probs = np.asarray(window_probabilities, dtype=np.float64)
    norm = _norm(threshold)
    ax.axhspan(threshold, 1.0, color=_RED, alpha=0.06, lw=0, zorder=0)
    ax.axhspan(0.0, threshold, color=_GREEN, alpha=0.06, lw=0, zorder=0)
    centres = starts + window_s / 2
    if probs.size:
        ax.plot(centres, probs, color=_MUTED, lw=1.0, zorder=2)
        bars = [_PROB_CMAP(norm(p)) if reliable else _UNRELIABLE for p in probs]
        ax.hlines(probs, starts, starts + window_s, colors=bars, lw=6, alpha=0.9, zorder=3,
                  capstyle="butt")  # fmt: skip
        dots = [(_RED if p >= threshold else _GREEN) if reliable else _MUTED for p in probs]
        ax.scatter(centres, probs, c=dots, s=26, zorder=4, edgecolors="white", linewidths=0.8)
    ax.axhline(threshold, color=_INK, lw=1.1, ls=(0, (4, 3)), zorder=3)
    right = xlim if xlim is not None else (float(starts[-1]) + window_s if starts.size else 1.0)
    ax.text(right, threshold, f" threshold {threshold:.0%}", va="center", ha="left",
            fontsize=8, color=_INK, clip_on=False)  # fmt: skip
    ax.set_ylim(-0.04, 1.04)  # dots at 0 % and 100 % stay visible
    ax.set_yticks([0, 0.5, 1])
    ax.set_yticklabels(["0%", "50%", "100%"])
    ax.set_xlim(0, right)
    ax.set_xlabel("time (s)", fontsize=8)
    ax.grid(axis="y", color=_GRID, lw=0.6, zorder=0)
    _style(ax)


def analysis_figure(
    signal: np.ndarray,
    rate: int,
    features: np.ndarray,
    hop_s: float,
    band_hz: tuple[float, float],
    window_starts_s: Sequence[float],
    window_s: float,
    window_probabilities: Sequence[float],
    threshold: float,
    *,
    reliable: bool = True,
    width_in: float = 11.0,
) -> Figure:
    """Waveform, spectrogram and probability timeline stacked on one shared time axis.

    Parameters
    ----------
    signal
        ``(n_samples,)`` prepared signal at ``rate`` Hz (``ModelInput.band``).
    features
        ``(n_mels, n_frames)`` log-mel features of the whole recording, one frame per
        ``hop_s`` seconds (``ModelInput.features``).
    window_starts_s, window_probabilities
        ``(n_windows,)`` start time in seconds and probability of "abnormal" of each window.
    reliable
        ``False`` for a recording too poor to judge: probabilities are drawn in grey.
    """
    starts = np.asarray(window_starts_s, dtype=np.float64)
    end = _time_extent(len(signal), rate, starts, window_s)
    fig = Figure(figsize=(width_in, 5.6), layout="constrained")
    ax_wave, ax_spec, ax_time = fig.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [1.15, 1.0, 0.95]}
    )
    draw_waveform(
        ax_wave, signal, rate, starts, window_s, window_probabilities, threshold, reliable=reliable
    )
    note = "" if reliable else _UNRELIABLE_NOTE
    _title(ax_wave, "Heart sound — shaded by how abnormal each stretch looks to the model" + note)
    draw_spectrogram(ax_spec, features, hop_s, band_hz, xlim=end)
    _title(ax_spec, "Frequency content (log-mel spectrogram)")
    draw_timeline(
        ax_time, starts, window_s, window_probabilities, threshold, xlim=end, reliable=reliable
    )
    _title(ax_time, f"Probability of an abnormal sound, per {window_s:g} s window" + note)
    for ax in (ax_wave, ax_spec):
        ax.tick_params(labelbottom=False)
    return fig


_SYSTOLE_COLOUR, _DIASTOLE_COLOUR = "#ffd8a8", "#d0ebff"  # light orange, light blue
_PHASE_NOTE = {
    "systolic": "sound fills systole (between S1 and S2) more than in normal hearts",
    "diastolic": "sound fills diastole (between S2 and the next S1) more than in normal hearts",
    "both": "sound fills both systole and diastole",
}


def cycle_view_start(s1_times_s: Sequence[float], duration_s: float, span_s: float) -> float:
    """Where a cycle view starts by default: just before the first S1 that leaves room for a
    whole span (the recording's start when there is none)."""
    for t in s1_times_s:
        if t - 0.15 + span_s <= duration_s:
            return max(0.0, t - 0.15)
    return 0.0


def draw_cycles(
    ax: Axes,
    signal: np.ndarray,
    rate: int,
    s1_times_s: Sequence[float],
    s2_times_s: Sequence[float],
    start_s: float,
    span_s: float,
) -> None:
    """Waveform of ``[start_s, start_s + span_s]`` with S1/S2 labelled and the phases shaded."""
    a, b = int(start_s * rate), int((start_s + span_s) * rate)
    x = np.asarray(signal[max(a, 0) : b], dtype=np.float32)
    end = start_s + span_s
    events = sorted([(t, "S1") for t in s1_times_s] + [(t, "S2") for t in s2_times_s])
    for (t0, kind), (t1, _) in itertools.pairwise(events):
        if t1 < start_s or t0 > end:
            continue
        colour = _SYSTOLE_COLOUR if kind == "S1" else _DIASTOLE_COLOUR
        ax.axvspan(max(t0, start_s), min(t1, end), color=colour, alpha=0.7, lw=0, zorder=0)
    if x.size:
        t = start_s + np.arange(x.size) / rate
        ax.plot(t, x, color=_INK, lw=0.6, zorder=2)
        peak = float(np.max(np.abs(x))) or 1.0
        ax.set_ylim(-1.25 * peak, 1.6 * peak)  # room for the S1/S2 labels above the trace
    for t, kind in events:
        if start_s <= t <= end:
            ax.axvline(t, color=_MUTED, lw=0.8, ls=(0, (2, 2)), zorder=1)
            ax.text(t, 0.97, kind, transform=ax.get_xaxis_transform(), ha="center", va="top",
                    fontsize=8, color=_INK, fontweight="bold", zorder=4,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                          "alpha": 0.8})  # fmt: skip
    ax.set_xlim(start_s, end)
    ax.set_yticks([])
    ax.set_xlabel("time (s)", fontsize=8)
    _style(ax)
    ax.spines["left"].set_visible(False)


def cycle_figure(
    signal: np.ndarray,
    rate: int,
    s1_times_s: Sequence[float],
    s2_times_s: Sequence[float],
    *,
    start_s: float | None = None,
    span_s: float = 4.0,
    murmur_phase: str = "",
    width_in: float = 11.0,
) -> Figure:
    """A few seconds of the recording with its heart cycles: S1, S2, systole, diastole.

    Parameters
    ----------
    signal
        ``(n_samples,)`` prepared signal at ``rate`` Hz (``ModelInput.band``).
    s1_times_s, s2_times_s
        Centres of the heart sounds (``AnalysisResult.s1_times_s``); without any, the plot
        says that no cycle could be followed.
    start_s
        First second shown (default: :func:`cycle_view_start`).
    murmur_phase
        ``AnalysisResult.murmur_phase``, written under the title when not empty.
    """
    duration = len(signal) / rate
    span = min(span_s, duration) if duration > 0 else span_s
    if start_s is None:
        start_s = cycle_view_start(s1_times_s, duration, span)
    start_s = float(np.clip(start_s, 0.0, max(duration - span, 0.0)))
    fig = Figure(figsize=(width_in, 2.4), layout="constrained")
    ax = fig.subplots()
    draw_cycles(ax, signal, rate, s1_times_s, s2_times_s, start_s, span)
    if s1_times_s:
        title = (f"Heart cycles, {start_s:.1f}–{start_s + span:.1f} s — systole shaded orange, "
                 "diastole blue")  # fmt: skip
        note = _PHASE_NOTE.get(murmur_phase, "")
        _title(ax, title + (f"; {note}" if note else ""))
    else:
        _title(ax, "Heart cycles — no regular S1/S2 pattern could be followed in this recording")
    return fig


def explanation_figure(
    phase_drop: dict[str, float],
    band_edges_hz: Sequence[tuple[float, float]],
    band_drop: Sequence[float],
    *,
    width_in: float = 11.0,
) -> Figure:
    """Two bar charts: the fall of the model's score when each phase, or each band, is hidden.

    A bar to the right (red) marks a part that raised the score toward "abnormal"; to the
    left (grey), one whose hiding raised the score (it looked normal). Phases without
    cycles (NaN) are left out.
    """
    fig = Figure(figsize=(width_in, 2.2), layout="constrained")
    ax_phase, ax_band = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
    phases = [(k, v) for k, v in phase_drop.items() if np.isfinite(v)]
    bands = [(f"{lo:.0f}–{hi:.0f} Hz", v) for (lo, hi), v in zip(band_edges_hz, band_drop,
                                                                 strict=True)]  # fmt: skip
    panels = (
        (ax_phase, phases, "By phase of the heart cycle"),
        (ax_band, bands, "By frequency band"),
    )
    for ax, items, title in panels:
        if not items:
            ax.text(0.5, 0.5, "no heart cycles to split by", ha="center", va="center",
                    fontsize=9, color=_MUTED, transform=ax.transAxes)  # fmt: skip
            ax.set_axis_off()
            _title(ax, title)
            continue
        names = [k for k, _ in items][::-1]
        values = np.array([v for _, v in items][::-1])
        colours = [_RED if v > 0 else _UNRELIABLE for v in values]
        ax.barh(names, values, color=colours, height=0.6, zorder=2)
        ax.axvline(0, color=_INK, lw=0.8, zorder=3)
        reach = max(float(np.max(np.abs(values))), 0.05)
        ax.set_xlim(-1.1 * reach, 1.1 * reach)
        ax.tick_params(labelsize=8)
        ax.set_xlabel("fall of the score when hidden (→ it raised the score)", fontsize=8)
        ax.grid(axis="x", color=_GRID, lw=0.6, zorder=0)
        _style(ax)
        _title(ax, title)
    return fig


def comparison_figure(before: dict, after: dict, *, width_in: float = 9.0) -> Figure:
    """ROC of the serving version (grey) and the candidate (blue) on each evaluation set.

    ``before`` / ``after`` are ``{"fixed": figures, "clinic": figures}`` with ``labels`` and
    ``probabilities`` per set (``auscult.retrain`` reports).
    """
    from auscult.metrics import roc_curve

    fig = Figure(figsize=(width_in, 3.6), layout="constrained")
    titles = {"fixed": "Fixed set (PhysioNet test records)", "clinic": "Clinic, held out"}
    for ax, part in zip(fig.subplots(1, 2), ("fixed", "clinic"), strict=True):
        for figures, colour, name in ((before, _MUTED, "serving"), (after, "#1c7ed6", "new")):
            labels = np.asarray(figures[part]["labels"])
            probs = np.asarray(figures[part]["probabilities"])
            if len(set(labels.tolist())) < 2:
                continue
            fpr, tpr, _ = roc_curve(labels, probs)
            ax.plot(fpr, tpr, color=colour, lw=2,
                    label=f"{name}: AUC {figures[part]['auc']:.3f}")  # fmt: skip
        ax.plot([0, 1], [0, 1], color=_GRID, lw=1, ls="--")
        ax.set_xlabel("1 − specificity", fontsize=8)
        ax.set_ylabel("sensitivity", fontsize=8)
        ax.legend(fontsize=8, loc="lower right", frameon=False)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        _style(ax)
        _title(ax, titles[part])
    return fig


def gauge_figure(
    probability: float,
    threshold: float,
    label: str,
    band: tuple[float, float] | None = None,
    reliable: bool = True,
) -> Figure:
    """A half-dial from 0 to 100 %: green below the threshold, red above, needle at ``probability``.

    For ``label == "unsure"`` the needle is amber; ``band`` (low, high), when given, is drawn
    amber: the borderline band around the threshold. A recording too poor to judge
    (``reliable=False``) gets a grey dial with no needle and no number: a guess must not
    look like a reading.
    """
    p = float(np.clip(probability, 0.0, 1.0))
    t = float(np.clip(threshold, 0.0, 1.0))
    fig = Figure(figsize=(3.4, 2.1), layout="constrained")
    ax = fig.subplots()
    ax.set_aspect("equal")
    ax.axis("off")

    def angle(v: float) -> float:  # 0 → 180°, 1 → 0°
        return 180.0 * (1.0 - v)

    if not reliable:
        ax.add_patch(Wedge((0, 0), 1.0, 0, 180, width=0.22, color=_MUTED, alpha=0.35))
        ax.text(0, 0.25, "not judged", ha="center", va="center", fontsize=15,
                fontweight="bold", color=_MUTED)  # fmt: skip
        ax.text(0, -0.12, "record again", ha="center", va="top", fontsize=10, color=_MUTED)
        ax.set_xlim(-1.15, 1.15)
        ax.set_ylim(-0.55, 1.25)
        return fig

    ax.add_patch(Wedge((0, 0), 1.0, angle(t), 180, width=0.22, color=_GREEN, alpha=0.85))
    ax.add_patch(Wedge((0, 0), 1.0, 0, angle(t), width=0.22, color=_RED, alpha=0.85))
    if band is not None and band[1] > band[0]:
        low, high = (float(np.clip(v, 0.0, 1.0)) for v in band)
        ax.add_patch(Wedge((0, 0), 1.0, angle(high), angle(low), width=0.22,
                           color=LABEL_COLOURS["unsure"], alpha=0.9))  # fmt: skip
    a = np.deg2rad(angle(t))
    ax.plot([0.74 * np.cos(a), 1.04 * np.cos(a)], [0.74 * np.sin(a), 1.04 * np.sin(a)],
            color=_INK, lw=1.5)  # fmt: skip
    needle = LABEL_COLOURS.get(label, _INK) if label == "unsure" else _INK
    a = np.deg2rad(angle(p))
    ax.plot([0, 0.82 * np.cos(a)], [0, 0.82 * np.sin(a)], color=needle, lw=3,
            solid_capstyle="round")  # fmt: skip
    ax.add_patch(Wedge((0, 0), 0.07, 0, 360, color=needle))
    p_text, t_text = percent_pair(p, t)
    ax.text(0, -0.2, p_text, ha="center", va="top", fontsize=20, fontweight="bold",
            color=LABEL_COLOURS.get(label, _INK))  # fmt: skip
    ax.text(-1.0, -0.08, "0%", ha="center", va="top", fontsize=8, color=_MUTED)
    ax.text(1.0, -0.08, "100%", ha="center", va="top", fontsize=8, color=_MUTED)
    ax.text(1.06 * np.cos(np.deg2rad(angle(t))), 1.06 * np.sin(np.deg2rad(angle(t))) + 0.04,
            f"threshold {t_text}", ha="center", va="bottom", fontsize=8, color=_INK)  # fmt: skip
    ax.set_xlim(-1.15, 1.15)
    ax.set_ylim(-0.55, 1.25)
    return fig


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """Render a figure to PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()
