"""PDF reports: one page per analysis, and an exam's summary page before its recordings'.

Header without personal data beyond the pseudonymous patient/exam id, the answer and what to
do, the calibrated chance (or "not judged"), quality, heart rate, the dial, the waveform /
spectrogram / per-window plot, the model version and the decision-support disclaimer.
Drawn with matplotlib (text stays text in the PDF, so it can be searched and read aloud).
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass
from datetime import datetime

import numpy as np

import utils
from auscult.analyzer import AnalysisResult
from auscult.exams import Exam
from auscult.plots import LABEL_COLOURS, analysis_figure, cycle_figure, figure_png, gauge_figure
from auscult.reading import DISCLAIMER, cycles_text, percent_pair, reading
from auscult.store import Entry
from config import Settings, get_settings

__all__ = ["Page", "exam_report_pdf", "report_pdf"]

A4 = (8.27, 11.69)  # inches
_INK, _MUTED = "#212529", "#868e96"


def page_image(fig) -> np.ndarray:
    """A rendered matplotlib figure as an RGB(A) array, to place on the page."""
    import matplotlib.image as mpimg

    return mpimg.imread(io.BytesIO(figure_png(fig, dpi=150)), format="png")


def _when(stamp: str | None) -> str:
    try:
        return datetime.fromisoformat(stamp or "").astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return ""


@dataclass(frozen=True)
class Page:
    """What one recording's page shows."""

    entry: Entry
    result: AnalysisResult
    model_input: utils.ModelInput | None  # None when the audio is gone: no plots
    explanation: str = ""  # Service.explanation; left out when empty


def pdf_pages(figures: list) -> bytes:
    """Figures as the pages of one PDF (text stays text)."""
    from matplotlib.backends.backend_pdf import PdfPages

    buf = io.BytesIO()
    with PdfPages(buf) as pdf:
        for fig in figures:
            pdf.savefig(fig)
    return buf.getvalue()


def report_pdf(
    entry: Entry,
    result: AnalysisResult,
    model_input: utils.ModelInput | None,
    settings: Settings | None = None,
    explanation: str = "",
) -> bytes:
    """The report of one finished analysis as PDF bytes (A4, one page); ``explanation`` is
    the sentence on what drove the score (``Service.explanation``), left out when empty."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        return pdf_pages([_recording_page(Page(entry, result, model_input, explanation), settings)])


def exam_report_pdf(exam: Exam, pages: list[Page], settings: Settings | None = None) -> bytes:
    """An exam's report: a summary page (every site's verdict), then one page per recording."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        return pdf_pages([_exam_page(exam, pages), *(_recording_page(p, settings) for p in pages)])


_RC = {"pdf.fonttype": 42, "font.family": "DejaVu Sans"}


def _exam_page(exam: Exam, pages: list[Page]):
    """The summary page: the exam's verdict, each site's result and what it calls for."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=A4)
    fig.text(0.06, 0.965, "Auscult — heart sound exam", fontsize=17, fontweight="bold")
    fig.text(0.06, 0.945, f"Patient/exam: {exam.patient_id} · day: {exam.day} · "
             f"{len(exam.entries)} recording(s)", fontsize=9, color=_MUTED)  # fmt: skip
    verdict = exam.verdict
    colour = LABEL_COLOURS.get(verdict, _INK)
    fig.text(0.06, 0.88, verdict.capitalize(), fontsize=30, fontweight="bold", color=colour)
    fig.text(0.06, 0.845, textwrap.fill(exam.summary(), 95), fontsize=10, va="top")
    y = 0.78
    fig.text(0.06, y, "Site", fontsize=10, fontweight="bold")
    fig.text(0.25, y, "Result", fontsize=10, fontweight="bold")
    fig.text(0.45, y, "Chance of abnormal", fontsize=10, fontweight="bold")
    fig.text(0.67, y, "Quality", fontsize=10, fontweight="bold")
    fig.text(0.8, y, "Heart rate", fontsize=10, fontweight="bold")
    by_entry = {p.entry.id: p for p in pages}
    for site, entry in exam.by_site.items():
        y -= 0.03
        page = by_entry.get(entry.id)
        r = page.result if page else None
        label = r.label if r else ("failed" if entry.status == "error" else "waiting")
        fig.text(0.06, y, site, fontsize=10)
        fig.text(0.25, y, label, fontsize=10, fontweight="bold",
                 color=LABEL_COLOURS.get(label, _MUTED))  # fmt: skip
        chance = f"{r.probability:.0%}" if r and r.reliable else "—"
        fig.text(0.45, y, chance, fontsize=10)
        fig.text(0.67, y, f"{r.quality:.2f}" if r else "—", fontsize=10)
        bpm = f"{r.heart_rate_bpm:.0f} bpm" if r and r.heart_rate_bpm else "—"
        fig.text(0.8, y, bpm, fontsize=10)
    if exam.missing_sites:
        y -= 0.04
        fig.text(0.06, y, f"Not recorded: {', '.join(exam.missing_sites)}.", fontsize=10,
                 color="#e8590c")  # fmt: skip
    fig.text(0.06, y - 0.05, "Each recording follows on its own page.", fontsize=9,
             color=_MUTED)  # fmt: skip
    fig.text(0.06, 0.06, textwrap.fill(DISCLAIMER, 110), fontsize=8.5, va="top",
             fontweight="bold")  # fmt: skip
    fig.text(0.06, 0.025, f"printed {datetime.now().astimezone():%Y-%m-%d %H:%M}",
             fontsize=7.5, color=_MUTED)  # fmt: skip
    return fig


def _recording_page(page: Page, settings: Settings | None = None):
    """One recording's page (a matplotlib Figure, A4)."""
    from matplotlib.figure import Figure

    entry, result, model_input, explanation = (
        page.entry, page.result, page.model_input, page.explanation
    )  # fmt: skip
    s = settings or get_settings()
    read = reading(result)
    colour = LABEL_COLOURS.get(result.label, _INK)
    fig = Figure(figsize=A4)
    fig.text(0.06, 0.965, "Auscult — heart sound report", fontsize=17, fontweight="bold")
    who = [
        f"Patient/exam: {entry.patient_id or 'not given'}",
        f"site: {entry.site or 'not given'}",
        f"source: {entry.source}",
        f"recorded: {_when(entry.created_at)}",
    ]
    fig.text(0.06, 0.945, " · ".join(who), fontsize=9, color=_MUTED)
    fig.text(0.06, 0.93, f"File: {entry.filename} · analysis #{entry.id}", fontsize=9,
             color=_MUTED)  # fmt: skip

    fig.text(0.06, 0.875, read.headline, fontsize=30, fontweight="bold", color=colour)
    fig.text(0.06, 0.85, read.subtitle, fontsize=12, color=_INK)
    p_text, t_text = percent_pair(result.probability, result.threshold)
    chance = f"{p_text} (threshold {t_text})" if result.reliable else "not judged"
    figures = [
        f"Chance of abnormal: {chance}",
        f"Recording quality: {result.quality:.2f} (0–1)",
        "Heart rate: "
        + (f"{result.heart_rate_bpm:.0f} bpm" if result.heart_rate_bpm else "not found"),
        f"Duration: {result.duration_s:.1f} s",
    ]
    for i, line in enumerate(figures):
        fig.text(0.06, 0.815 - 0.02 * i, line, fontsize=10.5)
    gauge = fig.add_axes((0.6, 0.76, 0.34, 0.2))
    gauge.imshow(page_image(gauge_figure(result.probability, result.threshold, result.label,
                                     result.band, reliable=result.reliable)))  # fmt: skip
    gauge.axis("off")

    y = 0.72
    sections = [
        ("What the model found", read.summary),
        ("Heart cycles", cycles_text(result)),
        ("Why", explanation),
        ("Next step", read.next_step),
    ]
    sections = [(title, body) for title, body in sections if body]
    for title, body in sections:
        fig.text(0.06, y, title, fontsize=11, fontweight="bold")
        wrapped = textwrap.fill(body, 95)
        fig.text(0.06, y - 0.017, wrapped, fontsize=9.5, va="top")
        y -= 0.03 + 0.015 * wrapped.count("\n") + 0.02
    for warning in result.warnings:
        fig.text(0.06, y, textwrap.fill(f"Note: {warning}", 100), fontsize=9, va="top",
                 color="#e8590c")  # fmt: skip
        y -= 0.025
    if entry.source == "phone":
        fig.text(0.06, y, "Recorded with a phone: outside the training data (electronic "
                 "stethoscopes); weigh with extra care.", fontsize=9, va="top",
                 color="#e8590c")  # fmt: skip
        y -= 0.025

    if model_input is not None and result.s1_times_s:
        cycles = fig.add_axes((0.04, y - 0.12, 0.92, 0.11))
        cycles.imshow(page_image(cycle_figure(
            model_input.band, s.band_rate, result.s1_times_s, result.s2_times_s,
            murmur_phase=result.murmur_phase,
        )))  # fmt: skip
        cycles.axis("off")
        cycles.set_anchor("N")
        y -= 0.13
    if model_input is not None:
        height = min(0.45, y - 0.12)
        plot = fig.add_axes((0.04, y - 0.01 - height, 0.92, height))
        plot.imshow(
            page_image(
                analysis_figure(
                    model_input.band, s.band_rate, model_input.features,
                    s.hop_length / s.sample_rate, (s.mel_fmin, s.mel_fmax),
                    result.window_starts_s, result.window_s, result.window_probabilities,
                    result.threshold, reliable=result.reliable,
                )
            )
        )  # fmt: skip
        plot.axis("off")
        plot.set_anchor("N")  # right under the text, whatever the page's free height
    else:
        fig.text(0.06, 0.4, "The audio is no longer stored, so there are no plots.",
                 fontsize=10, color=_MUTED)  # fmt: skip

    fig.text(0.06, 0.06, textwrap.fill(DISCLAIMER, 110), fontsize=8.5, va="top",
             fontweight="bold")  # fmt: skip
    fig.text(0.06, 0.025, f"Model {result.model_version} · printed "
             f"{datetime.now().astimezone():%Y-%m-%d %H:%M}", fontsize=7.5,
             color=_MUTED)  # fmt: skip
    return fig
