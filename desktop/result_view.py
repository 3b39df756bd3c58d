"""The result view: the answer, the plots, the heart cycles, why, listening, downloads.

Shared by the Analyze, Phone inbox and History pages; only layout — the data comes from
:class:`auscult.service.Service` (``desktop.resources``).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from auscult.errors import AuscultError
from auscult.explain import explain
from auscult.listening import playable_wav
from auscult.plots import (
    LABEL_COLOURS,
    analysis_figure,
    cycle_figure,
    cycle_view_start,
    explanation_figure,
    figure_png,
    gauge_figure,
)
from auscult.reading import DISCLAIMER, cycles_text, percent_pair, reading
from auscult.store import Entry
from config import Settings
from desktop.resources import service
from desktop.views import Shown, local_time, quality_word, result_json

__all__ = ["listening_wav", "render_entry", "render_result"]

_TINTS = {"normal": "#ebfbee", "abnormal": "#fff5f5", "unsure": "#fff9db"}
CYCLE_SPAN_S = 4.0  # seconds the heart-cycle plot shows


def _figure(shown: Shown, settings: Settings, which: str) -> bytes | None:
    """The rendered ``"gauge"``, ``"plot"`` or ``"cycles@<start s>"`` PNG of one result,
    cached in the session.

    Rendered one at a time, where the page shows them, so the result card is on screen
    before the slower three-panel plot is drawn. ``None`` for the plot when the audio is gone.
    """
    cache: dict[tuple[str, str], bytes | None] = st.session_state.figures
    if (shown.key, which) not in cache:
        r = shown.result
        if which == "gauge":
            png = figure_png(
                gauge_figure(r.probability, r.threshold, r.label, r.band, reliable=r.reliable),
                dpi=120,
            )
        elif which.startswith("cycles@"):
            png = None
            mi = shown.model_input or service(settings).model_input(shown.audio_path)
            if mi is not None:
                png = figure_png(
                    cycle_figure(
                        mi.band, settings.band_rate, r.s1_times_s, r.s2_times_s,
                        start_s=float(which.removeprefix("cycles@")), span_s=CYCLE_SPAN_S,
                        murmur_phase=r.murmur_phase,
                    ),
                    dpi=110,
                )  # fmt: skip
        else:
            png = None
            mi = shown.model_input or service(settings).model_input(shown.audio_path)
            if mi is not None:
                png = figure_png(
                    analysis_figure(
                        mi.band,
                        settings.band_rate,
                        mi.features,
                        settings.hop_length / settings.sample_rate,
                        (settings.mel_fmin, settings.mel_fmax),
                        r.window_starts_s,
                        r.window_s,
                        r.window_probabilities,
                        r.threshold,
                        reliable=r.reliable,
                    ),
                    dpi=110,
                )
        while len(cache) >= 16:  # keep the session small
            cache.pop(next(iter(cache)))
        cache[(shown.key, which)] = png
    return cache[(shown.key, which)]


@st.cache_data(show_spinner=False, max_entries=16)
def _listening_wav(path: str, mtime: float, bell: bool) -> bytes | None:
    del mtime  # cache key: a changed file is converted again
    try:
        return playable_wav(path, bell=bell)
    except AuscultError:
        return None


def listening_wav(path: str, bell: bool) -> bytes | None:
    """The recording as a WAV every browser plays (browsers refuse PhysioNet's 2 kHz)."""
    return _listening_wav(path, Path(path).stat().st_mtime, bell)


def result_card(label: str, headline: str, subtitle: str) -> None:
    colour = LABEL_COLOURS.get(label, "#495057")
    st.markdown(
        f'<div class="auscult-card" style="border-left:10px solid {colour};'
        f'background:{_TINTS.get(label, "#f8f9fa")};padding:14px 22px;border-radius:10px">'
        f'<div style="font-size:3.2rem;font-weight:700;line-height:1.05;color:{colour}">'
        f"{headline}</div>"
        f'<div style="font-size:1.15rem;color:#495057;margin-top:2px">{subtitle}</div></div>',
        unsafe_allow_html=True,
    )


def render_result(shown: Shown, settings: Settings, key: str) -> None:
    """The result card, reading, plots, audio and JSON download of one analysis."""
    r = shown.result
    read = reading(r)
    where = f" · site: {shown.site}" if shown.site else ""
    where += f" · patient/exam: {shown.patient_id}" if shown.patient_id else ""
    ref = f" · reference label: **{shown.reference}**" if shown.reference else ""
    when = f" · {local_time(shown.created_at)}" if shown.created_at else ""
    st.caption(f"**{shown.name}** · {shown.source}{where}{when}{ref}")

    left, middle, right = st.columns([1.25, 0.95, 1.3], gap="medium")
    with left:
        result_card(r.label, read.headline, read.subtitle)
        st.caption(f":material/medical_information: **{DISCLAIMER.split('.')[0]}.**")
    with middle:
        st.image(_figure(shown, settings, "gauge"), width="stretch")
    with right:
        a, b = st.columns(2)
        p_text, t_text = percent_pair(r.probability, r.threshold)
        a.metric(
            "Chance of abnormal",
            p_text if r.reliable else "—",
            help=(
                f"calibrated on the validation records; decision threshold {t_text}"
                + (
                    f"; borderline (unsure) from {r.band[0]:.0%} to {r.band[1]:.0%}"
                    if r.band[1] > r.band[0]
                    else ""
                )
                if r.reliable
                else "not shown: the recording is too poor for the model's number to mean anything"
            ),
        )
        b.metric("Heart rate", f"{r.heart_rate_bpm:.0f} bpm" if r.heart_rate_bpm else "—")
        a.metric(
            "Recording quality",
            quality_word(r.quality, settings),
            help=f"{r.quality:.2f} (0–1)",
        )
        b.metric("Duration", f"{r.duration_s:.1f} s")

    with st.container(border=True):
        st.markdown(f"**{read.summary}**")
        st.markdown(f"**Next step:** {read.next_step}")
        for tip in read.tips:
            st.markdown(f"- {tip}")
    if shown.source == "phone":
        st.info(
            "Recorded with a phone: the model learned from electronic stethoscopes, and phone "
            "recordings are outside its training data — weigh this result with extra care.",
            icon=":material/smartphone:",
        )
    for warning in r.warnings:
        st.warning(warning, icon=":material/warning:")

    plot_png = _figure(shown, settings, "plot")
    if plot_png is not None:
        st.image(plot_png, width="stretch")
        cycle_view(shown, settings, key)
        why_view(shown, settings)
    else:
        st.info("The audio file of this analysis is no longer there, so there are no plots.")

    audio, bell_col, download = st.columns([2.4, 0.9, 1], vertical_alignment="center")
    if shown.audio_path and Path(shown.audio_path).is_file():
        bell = bell_col.toggle(
            "Bell (25–400 Hz)",
            key=f"{key}-bell",
            help="Listen as through a stethoscope's bell: heart sounds and murmurs, no hiss",
        )
        with audio:
            wav = listening_wav(shown.audio_path, bell)
            if wav is not None:
                st.audio(wav, format="audio/wav")
    with download:
        if shown.entry_id is not None:
            st.download_button(
                "Report (PDF)",
                lambda: service(settings).report_pdf(shown.entry_id),
                file_name=f"auscult-{Path(shown.name).stem}-report.pdf",
                mime="application/pdf",
                icon=":material/picture_as_pdf:",
                key=f"{key}-pdf",
                on_click="ignore",
            )
        st.download_button(
            "Download result (JSON)",
            result_json(shown),
            file_name=f"auscult-{Path(shown.name).stem}-{r.label}.json",
            mime="application/json",
            icon=":material/download:",
            key=f"{key}-json",
            on_click="ignore",
        )
    if shown.entry_id is not None:
        confirm_outcome(shown, key)
    st.caption(f"{DISCLAIMER} Model {r.model_version}.")


def confirm_outcome(shown: Shown, key: str) -> None:
    """Record the true outcome of this recording (e.g. echo-confirmed) for retraining."""
    svc = service()
    kept = svc.clinic.of_analysis(shown.entry_id)
    title = "Confirm the true outcome (for retraining)"
    if kept is not None:
        title = f"Outcome confirmed: {kept.label} — {kept.who}"
    with st.expander(title, icon=":material/fact_check:"):
        if kept is not None:
            st.caption(
                f"Kept for retraining on {kept.created_at[:10]} by {kept.who}"
                + (f" ({kept.evidence})" if kept.evidence else "")
                + ". Confirm again to correct it; the newest confirmation counts."
            )
        a, b, c = st.columns([1, 1.4, 1.2])
        label = a.radio("True outcome", ("abnormal", "normal"), key=f"{key}-truth",
                        horizontal=True)  # fmt: skip
        evidence = b.text_input("Evidence", key=f"{key}-evidence",
                                placeholder="e.g. echocardiogram 28 Nov")  # fmt: skip
        who = c.text_input("Who", key=f"{key}-who", placeholder="your name or role")
        if st.button("Keep for retraining", key=f"{key}-confirm", icon=":material/save:"):
            try:
                svc.confirm_label(shown.entry_id, label, who=who, evidence=evidence or None)
            except AuscultError as exc:
                st.error(str(exc))
            else:
                st.toast("Kept with its true outcome for the next retraining",
                         icon=":material/fact_check:")  # fmt: skip
                st.rerun()


def cycle_view(shown: Shown, settings: Settings, key: str) -> None:
    """A few seconds with S1/S2 marked, systole/diastole shaded, and a slider to move along."""
    r = shown.result
    st.markdown(f"**Heart cycles.** {cycles_text(r)}")
    if not r.s1_times_s:
        return
    span = min(CYCLE_SPAN_S, r.duration_s)
    start = cycle_view_start(r.s1_times_s, r.duration_s, span)
    last = max(r.duration_s - span, 0.0)
    if last > 0.5:
        start = st.slider(
            "Show the cycles from (s)", 0.0, round(last, 1), round(start, 1), step=0.5,
            key=f"{key}-cycles", help="Move along the recording; the plot shows 4 s",
        )  # fmt: skip
    png = _figure(shown, settings, f"cycles@{start:.1f}")
    if png is not None:
        st.image(png, width="stretch")
    if shown.audio_path and Path(shown.audio_path).is_file():
        wav = listening_wav(shown.audio_path, bell=False)
        if wav is not None:
            label, player = st.columns([1, 3], vertical_alignment="center")
            label.caption(f"Play these {span:.0f} s ({start:.1f}–{start + span:.1f} s)")
            with player:
                st.audio(wav, format="audio/wav", start_time=start, end_time=start + span)


def _explanation(shown: Shown, settings: Settings) -> tuple[bytes, str] | None:
    """The occlusion chart and its sentence, computed once per result and session."""
    cache: dict = st.session_state.figures
    if (shown.key, "why") not in cache:
        svc = service(settings)
        mi = shown.model_input or svc.model_input(shown.audio_path)
        found = None
        if mi is not None:
            e = explain(svc.analyzer.runner, mi, shown.result, settings)
            chart = explanation_figure(e.phase_drop, e.band_edges_hz, e.band_drop)
            found = (figure_png(chart, dpi=110), e.sentence(shown.result.label))
        cache[(shown.key, "why")] = found
    return cache[(shown.key, "why")]


def why_view(shown: Shown, settings: Settings) -> None:
    """Which phase of the cycle and which band drove the model's score (occlusion)."""
    r = shown.result
    if not r.reliable:
        return  # a recording too poor to judge has no score worth explaining
    if r.model_version != service(settings).analyzer.runner.version:
        st.caption("Why: explanations are drawn for results of the current model only.")
        return
    found = _explanation(shown, settings)
    if found is None:
        return
    png, sentence = found
    st.markdown(f"**Why.** {sentence}")
    st.image(png, width="stretch")
    blended = service(settings).analyzer.runner.cycle_weight > 0
    st.caption(
        "Each part of the recording was hidden in turn (set to its quiet background level) "
        "and the CNN asked again; a red bar raised its score toward abnormal."
        + (
            " The final score also weighs the heart-cycle model (how much sound fills systole "
            "and diastole, band by band, relative to S1), which this chart does not split."
            if blended
            else ""
        )
    )


def render_entry(entry: Entry, settings: Settings, key: str) -> None:
    """A history row as its page shows it: the result view, or why there is none yet."""
    if entry.status == "error":
        st.error(f"**{entry.filename}** could not be analysed: {entry.error}")
    elif entry.status in ("pending", "analysing"):
        st.info(f"**{entry.filename}** is being analysed; it opens here when it is done.")
    else:
        render_result(Shown.of_entry(entry), settings, key=key)
