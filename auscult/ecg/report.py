"""The ECG report: one A4 page with the answer, the rhythm figures, a strip, the heart-rate
trend and the beat that decided the most, then the decision-support disclaimer."""

from __future__ import annotations

import textwrap

import numpy as np

from auscult.ecg.analyzer import DISCLAIMER, EcgAnalysis, explain_beat
from auscult.ecg.classify import BEFORE_S, CLASSES, WAVE_RATE, BeatModel, beat_inputs
from auscult.ecg.history import EcgEntry
from auscult.ecg.plots import beat_figure, rate_trend_figure, strip_figure
from auscult.ecg.reading import EcgRecording
from auscult.plots import LABEL_COLOURS
from auscult.report import A4, page_image, pdf_pages

__all__ = [
    "HEADLINES",
    "ecg_report_pdf",
    "ecg_summary_lines",
    "explained_beat_figure",
    "notable_beat",
]


#: The answer's headline per label, on the page and in the PDF.
HEADLINES = {
    "normal": "Looks normal",
    "abnormal": "Needs a look",
    "unsure": "Unsure — record again",
}


def ecg_summary_lines(analysis: EcgAnalysis) -> list[str]:
    """The rhythm figures as short lines (page, PDF, API summary)."""
    r = analysis.rhythm
    counts = {c: int(np.sum(analysis.beat_classes == c)) for c in ("N", "S", "V", "F", "Q")}
    lines = [
        "Heart rate: " + (f"{r.heart_rate_bpm:.0f} bpm" if r.heart_rate_bpm else "not found"),
        f"Rhythm: {r.rhythm.replace('_', ' ')}",
        f"Beats: {len(analysis.beat_classes)} — "
        + ", ".join(f"{c} {n}" for c, n in counts.items()),
        f"PVC burden {r.pvc_burden:.1%} · PAC burden {r.pac_burden:.1%} · "
        f"AF burden {r.af_burden:.1%}",
        f"Paced: {'yes' if r.paced else 'no'}",
        f"Readable: {analysis.quality:.0%} of {analysis.duration_s:.0f} s (lead {analysis.lead})",
    ]
    if r.af_episodes:
        lines.append(
            "AF episodes: "
            + ", ".join(f"{e.start_s:.0f}–{e.end_s:.0f} s" for e in r.af_episodes[:6])
        )
    if r.pauses_s:
        lines.append("Pauses > 2 s at: " + ", ".join(f"{t:.1f} s" for t in r.pauses_s[:8]))
    return lines


def notable_beat(analysis: EcgAnalysis) -> int | None:
    """The beat to explain: the first ventricular, else supraventricular, else fusion, else
    the first normal beat."""
    for cls in ("V", "S", "F", "N"):
        hits = np.flatnonzero(analysis.beat_classes == cls)
        if len(hits):
            return int(hits[0])
    return None


def explained_beat_figure(model: BeatModel, recording: EcgRecording, analysis: EcgAnalysis, i: int):
    """Beat ``i`` as the model saw it, shaded by what decided its class (occlusion)."""
    lead = recording.lead(recording.leads.index(analysis.lead))
    peaks = np.round(analysis.beat_times_s * recording.rate).astype(np.int64)
    waves, rr = beat_inputs(lead, recording.rate, peaks)
    cls = str(analysis.beat_classes[i])
    k = CLASSES.index(cls) if cls in CLASSES else 0
    weight = explain_beat(model, waves[i], rr[i], k)
    return beat_figure(waves[i, :, 0], weight, cls, WAVE_RATE, BEFORE_S)


def ecg_report_pdf(
    entry: EcgEntry, analysis: EcgAnalysis, recording: EcgRecording, model: BeatModel
) -> bytes:
    """The one-page PDF of a stored ECG analysis."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=A4)
    fig.text(0.06, 0.965, "Auscult — ECG report", fontsize=17, fontweight="bold")
    fig.text(
        0.06,
        0.945,
        f"Patient/exam: {entry.patient_id or 'not given'} · file: "
        f"{entry.filename} · analysis E{entry.id}",
        fontsize=9,
        color="#868e96",
    )
    fig.text(
        0.06,
        0.905,
        HEADLINES[analysis.label],
        fontsize=28,
        fontweight="bold",
        color=LABEL_COLOURS.get(analysis.label, "#212529"),
    )
    fig.text(0.06, 0.875, textwrap.fill(analysis.reason, 95), fontsize=10, va="top")
    for i, line in enumerate(ecg_summary_lines(analysis)):
        fig.text(0.06, 0.83 - 0.018 * i, line, fontsize=10)
    start = 0.0
    notable = notable_beat(analysis)
    if notable is not None:
        start = max(0.0, float(analysis.beat_times_s[notable]) - 4.0)
    lead = recording.lead(recording.leads.index(analysis.lead))
    strip = fig.add_axes((0.03, 0.47, 0.94, 0.2))
    strip.imshow(page_image(strip_figure(lead, recording.rate, analysis, start, 10.0)))
    strip.axis("off")
    trend = fig.add_axes((0.03, 0.24, 0.5, 0.2))
    trend.imshow(page_image(rate_trend_figure(analysis)))
    trend.axis("off")
    if notable is not None:
        beat = fig.add_axes((0.56, 0.24, 0.4, 0.2))
        beat.imshow(page_image(explained_beat_figure(model, recording, analysis, notable)))
        beat.axis("off")
    fig.text(
        0.06,
        0.08,
        textwrap.fill(DISCLAIMER + f" Beat model {analysis.model_version}.", 100),
        fontsize=8.5,
        color="#868e96",
    )
    return pdf_pages([fig])
