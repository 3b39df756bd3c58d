"""ECG page: upload an ECG record → a scrollable strip with beats coloured by class, the
rhythm summary, burdens and heart-rate trend, one beat explained, unsure stretches marked,
the PDF; earlier ECG analyses listed below."""

from __future__ import annotations

import streamlit as st

from auscult.ecg.analyzer import DISCLAIMER, EcgAnalysis
from auscult.ecg.history import EcgEntry
from auscult.ecg.plots import (
    CLASS_COLOURS,
    CLASS_NAMES,
    rate_trend_figure,
    strip_figure,
)
from auscult.ecg.reading import EcgRecording
from auscult.ecg.report import (
    HEADLINES,
    ecg_summary_lines,
    explained_beat_figure,
    notable_beat,
)
from auscult.errors import AuscultError
from desktop.resources import service

__all__ = ["page_ecg"]

ECG_TYPES = ["hea", "dat", "mat", "zip", "edf", "bdf", "csv", "txt"]
#: Streamlit's text colour for each class's tag (matching CLASS_COLOURS).
_TAG = {"N": "green", "S": "orange", "V": "red", "F": "violet", "Q": "gray"}
_LABEL_TAG = {"normal": "green", "abnormal": "red", "unsure": "gray"}


@st.cache_resource(max_entries=2, show_spinner="Reading the ECG…")
def _recording(entry_id: int) -> EcgRecording:
    """A stored ECG read once, not on every move of the strip's slider (a Holter file is
    large); the last two stay in memory."""
    svc = service()
    return svc.ecg_recording(svc.ecg_history.get(entry_id))


def _upload() -> None:
    with st.form("ecg_upload", clear_on_submit=True):
        files = st.file_uploader(
            "ECG file(s): a WFDB record (.hea with its .dat or .mat, or a zip), EDF, CSV, or "
            "an Apple Health export (ecg_YYYY-MM-DD.csv)",
            type=ECG_TYPES,
            accept_multiple_files=True,
            max_upload_size=max(1, service().settings.ecg_max_upload_bytes // (1024 * 1024)),
            key="ecg_files",
        )
        cols = st.columns(3)
        lead = cols[0].text_input("Lead (optional)", placeholder="e.g. MLII, I")
        rate = cols[1].number_input(
            "Sampling rate for a CSV without one (Hz)", min_value=0.0, value=0.0, step=1.0
        )
        patient = cols[2].text_input("Patient / exam id (optional)")
        go = st.form_submit_button("Analyse ECG", type="primary")
    if not go:
        return
    if not files:
        st.warning("Choose an ECG file first.")
        return
    with st.spinner("Reading the ECG and finding beats…"):
        try:
            entry, _, _ = service().analyse_ecg(
                [(f.name, f.getvalue()) for f in files],
                source="desktop",
                patient_id=patient or None,
                lead=lead or None,
                rate_hz=rate or None,
            )
        except AuscultError as err:
            st.error(f"**{err.title}.** {err}")
            return
    st.session_state.ecg_entry = entry.id


def _beat_explanation(recording: EcgRecording, analysis: EcgAnalysis) -> None:
    i = notable_beat(analysis)
    if i is None:
        return
    model = service().ecg_analyzer.model
    st.pyplot(explained_beat_figure(model, recording, analysis, i), clear_figure=True)
    cls = str(analysis.beat_classes[i])
    st.caption(
        f"Beat at {analysis.beat_times_s[i]:.1f} s ({CLASS_NAMES[cls]}): shaded parts changed "
        "the model's answer most when hidden. Its RR context (prematurity) also counts."
    )


def render_ecg(entry: EcgEntry, analysis: EcgAnalysis) -> None:
    """One ECG analysis: answer, figures, strip, trend, explanation, report."""
    st.markdown(f"## :{_LABEL_TAG[analysis.label]}[{HEADLINES[analysis.label]}]")
    st.write(analysis.reason)
    st.caption(DISCLAIMER)
    r = analysis.rhythm
    cols = st.columns(5)
    cols[0].metric("Heart rate", f"{r.heart_rate_bpm:.0f} bpm" if r.heart_rate_bpm else "—")
    cols[1].metric("Rhythm", r.rhythm.replace("_", " "))
    cols[2].metric("PVC burden", f"{r.pvc_burden:.1%}")
    cols[3].metric("PAC burden", f"{r.pac_burden:.1%}")
    cols[4].metric("AF burden", f"{r.af_burden:.1%}")
    with st.expander("All figures"):
        for line in ecg_summary_lines(analysis):
            st.write(line)
    try:
        recording = _recording(entry.id)
    except AuscultError as err:
        st.info(f"The strip cannot be drawn: {err}")
        return
    lead = recording.lead(recording.leads.index(analysis.lead))
    span = 10.0
    last = max(0.0, recording.duration_s - span)
    start = 0.0
    if last > 0:
        start = st.slider(
            "Strip start (s)", 0.0, float(last), 0.0, step=1.0, key=f"ecg_start_{entry.id}"
        )
    st.pyplot(strip_figure(lead, recording.rate, analysis, start, span), clear_figure=True)
    st.caption(
        " · ".join(f":{_TAG[c]}[{c}] {CLASS_NAMES[c]}" for c in CLASS_COLOURS)
        + " · grey bands: stretches too poor to read (unsure)"
    )
    left, right = st.columns(2)
    with left:
        st.pyplot(rate_trend_figure(analysis), clear_figure=True)
    with right:
        _beat_explanation(recording, analysis)
    st.download_button(
        "Download PDF report",
        data=lambda: service().ecg_report_pdf(entry.id),
        file_name=f"auscult-ecg-{entry.id}.pdf",
        mime="application/pdf",
        key=f"ecg_pdf_{entry.id}",
    )


def page_ecg() -> None:
    st.title("ECG")
    st.caption(
        "Beats, their class (AAMI N, S, V, F, Q) and the rhythm from a resting, Holter or "
        "consumer ECG. " + DISCLAIMER
    )
    _upload()
    history = service().ecg_history
    wanted = st.query_params.get("ecg")
    chosen = st.session_state.get("ecg_entry") or (
        int(wanted) if wanted and wanted.isdigit() else None
    )
    if chosen:
        try:
            entry = history.get(int(chosen))
        except AuscultError as err:
            st.error(str(err))
        else:
            render_ecg(entry, EcgAnalysis.from_dict(entry.result))
    entries = history.entries(50)
    if entries:
        st.subheader("Earlier ECG analyses")
        rows = [e.summary() for e in entries]
        event = st.dataframe(
            rows, hide_index=True, on_select="rerun", selection_mode="single-row", key="ecg_rows"
        )
        picked = event.selection.rows if event and event.selection else []
        if picked and rows[picked[0]]["id"] != chosen:
            st.session_state.ecg_entry = rows[picked[0]]["id"]
            st.rerun()
