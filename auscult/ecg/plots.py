"""ECG pictures for the page and the PDF: a strip with beats coloured by class and unsure
stretches shaded, the heart-rate trend, and one beat with what drove its class."""

from __future__ import annotations

import numpy as np

from auscult.ecg.analyzer import EcgAnalysis

__all__ = ["CLASS_COLOURS", "CLASS_NAMES", "beat_figure", "rate_trend_figure", "strip_figure"]

CLASS_COLOURS = {"N": "#2b8a3e", "S": "#e67700", "V": "#c92a2a", "F": "#862e9c", "Q": "#868e96"}
CLASS_NAMES = {
    "N": "normal / bundle-branch",
    "S": "supraventricular ectopic",
    "V": "ventricular ectopic",
    "F": "fusion",
    "Q": "paced or not judged",
}


def strip_figure(
    signal: np.ndarray,
    rate: int,
    analysis: EcgAnalysis,
    start_s: float = 0.0,
    seconds: float = 10.0,
):
    """``seconds`` of the analysed lead from ``start_s``, on ECG-paper-like grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = int(start_s * rate), int(min(len(signal), (start_s + seconds) * rate))
    t = np.arange(a, b) / rate
    fig, ax = plt.subplots(figsize=(12, 2.8), dpi=100)
    for s0, s1, why in analysis.unsure_stretches:
        if s1 > start_s and s0 < start_s + seconds:
            ax.axvspan(max(s0, start_s), min(s1, start_s + seconds), color="#dee2e6", alpha=0.7)
            ax.text(
                max(s0, start_s) + 0.05,
                0.98,
                f"unsure: {why}",
                transform=ax.get_xaxis_transform(),
                va="top",
                fontsize=8,
                color="#495057",
            )
    ax.plot(t, signal[a:b], color="#212529", linewidth=0.8)
    inside = (analysis.beat_times_s >= start_s) & (analysis.beat_times_s < start_s + seconds)
    top = float(np.max(signal[a:b])) if b > a else 1.0
    for time_s, cls in zip(
        analysis.beat_times_s[inside], analysis.beat_classes[inside], strict=True
    ):
        ax.axvline(time_s, color=CLASS_COLOURS[cls], alpha=0.25, linewidth=3)
        ax.text(
            time_s,
            top,
            cls,
            color=CLASS_COLOURS[cls],
            ha="center",
            va="bottom",
            fontsize=9,
            fontweight="bold",
        )
    ax.set_xlim(start_s, start_s + seconds)
    ax.set_xticks(np.arange(np.ceil(start_s / 0.2) * 0.2, start_s + seconds, 0.2), minor=True)
    ax.grid(which="both", color="#ffc9c9", linewidth=0.5)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"{analysis.lead} (mV)")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def rate_trend_figure(analysis: EcgAnalysis):
    """Heart rate per minute (or per beat for a strip under two minutes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.4), dpi=100)
    trend = analysis.rhythm.hr_trend
    if len(trend) >= 2:
        ax.plot([m / 60 for m, _ in trend], [v for _, v in trend], marker="o", color="#1971c2")
        ax.set_xlabel("minute")
    elif len(analysis.beat_times_s) >= 3:
        t = analysis.beat_times_s
        ax.plot(t[1:], 60.0 / np.diff(t), marker=".", color="#1971c2")
        ax.set_xlabel("time (s)")
    ax.axhspan(50, 100, color="#d3f9d8", alpha=0.5, label="50–100 bpm")
    for e in analysis.rhythm.af_episodes:
        scale = 60 if len(trend) >= 2 else 1
        ax.axvspan(e.start_s / scale, e.end_s / scale, color="#ffd8a8", alpha=0.6)
    ax.set_ylabel("bpm")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def beat_figure(wave: np.ndarray, weight: np.ndarray, cls: str, wave_rate: int, before_s: float):
    """One beat as the model saw it, shaded by how much each part drove its class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(len(wave)) / wave_rate - before_s
    fig, ax = plt.subplots(figsize=(4, 2.6), dpi=100)
    ax.plot(t, wave, color="#212529")
    for i in range(len(wave) - 1):
        if weight[i] > 0.05:
            ax.axvspan(
                t[i], t[i + 1], color=CLASS_COLOURS[cls], alpha=0.5 * float(weight[i]), linewidth=0
            )
    ax.axvline(0, color="#868e96", linestyle=":")
    ax.set_xlabel("time from R peak (s)")
    ax.set_title(f"{cls}: {CLASS_NAMES[cls]} — shaded: what decided it", fontsize=9)
    ax.set_yticks([])
    fig.tight_layout()
    return fig
