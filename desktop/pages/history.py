"""History page: every analysis kept — searched, grouped into exams, reopened or deleted.

``/history?entry=12`` opens analysis 12 (the link in the "recording analysed" notice).
Click a row to open it. The Exams view groups the recordings of one patient/exam id and
day, with each exam's summary, its PDF and the earlier exams of the same id to compare.
The ECG view lists ECG analyses (modality "ecg") and opens one like the ECG page.
"""

from __future__ import annotations

import streamlit as st

from auscult.ecg.analyzer import EcgAnalysis
from auscult.exams import Exam
from auscult.store import SITES, SOURCES, Entry
from config import get_settings
from desktop.pages.ecg import render_ecg
from desktop.resources import service
from desktop.result_view import render_entry
from desktop.views import PERCENT_COLUMN, coloured, label_word, local_time

__all__ = ["page_history"]

_RESULTS = ("all", "normal", "abnormal", "unsure", "failed", "waiting")
_VERDICT_ICONS = {
    "abnormal": ":red[●]",
    "unsure": ":orange[●]",
    "normal": ":green[●]",
    "waiting": ":blue[●]",
    "failed": ":gray[●]",
}


def _deep_link() -> None:
    """Open the entry named in the address (``?entry=12``) once."""
    wanted = st.query_params.get("entry")
    if wanted and wanted.isdigit():
        st.session_state.history_shown = int(wanted)
        del st.query_params["entry"]


def _rows(entries: list[Entry]) -> list[dict]:
    return [
        {
            "id": e.id,
            "time": local_time(e.created_at),
            "source": e.source,
            "site": e.site or "",
            "patient/exam": e.patient_id or "",
            "file": e.filename,
            "result": label_word(e.label if e.status == "done" else e.status),
            "probability": None if e.probability is None else 100 * e.probability,
            "quality": e.quality,
            "duration_s": e.duration_s,
            "error": e.error or "",
        }
        for e in entries
    ]


def _table(entries: list[Entry], key: str) -> None:
    """The entries as a table; clicking a row opens that analysis below."""
    event = st.dataframe(
        coloured(_rows(entries), "result"),
        hide_index=True,
        column_config={
            "probability": PERCENT_COLUMN,
            "quality": st.column_config.NumberColumn("quality", format="%.2f"),
            "duration_s": st.column_config.NumberColumn("duration (s)", format="%.1f"),
            "error": st.column_config.TextColumn("error", width="large"),
        },
        height=min(400, 38 + 35 * len(entries)),
        on_select="rerun",
        selection_mode="single-row",
        key=key,
    )
    rows = event.selection.rows if event is not None else []
    if rows:
        st.session_state.history_shown = entries[rows[0]].id


def _exam_card(exam: Exam, earlier: list[Exam]) -> None:
    """One exam: verdict, summary, its recordings, its PDF and the earlier exams of the id."""
    svc = service()
    icon = _VERDICT_ICONS.get(exam.verdict, "")
    with st.container(border=True):
        head, pdf = st.columns([4, 1], vertical_alignment="center")
        head.markdown(f"{icon} **{exam.patient_id}** · {exam.day} · **{exam.verdict}**")
        pdf.download_button(
            "Exam report (PDF)",
            lambda: svc.exam_report_pdf(exam.key),
            file_name=f"auscult-exam-{exam.patient_id}-{exam.day}.pdf",
            mime="application/pdf",
            icon=":material/picture_as_pdf:",
            key=f"exam-pdf-{exam.key}",
            on_click="ignore",
        )
        st.caption(exam.summary())
        _table(list(exam.by_site.values()), key=f"exam-table-{exam.key}")
        if earlier:
            st.markdown("**Earlier exams of this id** (to compare)")
            for old in earlier:
                old_icon = _VERDICT_ICONS.get(old.verdict, "")
                st.caption(f"{old_icon} {old.day} · **{old.verdict}** — {old.summary()}")


def _exams_view(search: str) -> None:
    svc = service()
    exams = [e for e in svc.exams(limit=200) if search.lower() in e.patient_id.lower()]
    if not exams:
        st.info(
            "No exams yet. Give a patient or exam id when you analyse (or on the Phone page "
            "before scanning the QR code) and the recordings of one day group into an exam."
        )
        return
    by_id: dict[str, list[Exam]] = {}
    for exam in exams:
        by_id.setdefault(exam.patient_id, []).append(exam)
    for exam in exams[:20]:
        history = by_id[exam.patient_id]
        _exam_card(exam, [e for e in history if e.day < exam.day])
    if len(exams) > 20:
        st.caption(f"The newest 20 of {len(exams)} exams; search for an id to find others.")


def _recordings_view(search: str) -> None:
    svc = service()
    f1, f2, f3 = st.columns(3)
    source = f1.selectbox("Source", ("all", *SOURCES), key="hist_source")
    label = f2.selectbox("Result", _RESULTS, key="hist_label")
    site = f3.selectbox("Site", ("all", *SITES), key="hist_site")
    status = {"failed": "error", "waiting": "pending"}.get(label)
    page = svc.history(
        source=None if source == "all" else source,
        label=None if label in ("all", "failed", "waiting") else label,
        status=status,
        site=None if site == "all" else site,
        search=search or None,
        limit=500,
    )
    if not page.entries:
        nothing = source == label == site == "all" and not search
        st.info("No analyses yet." if nothing else "Nothing matches the filter.")
        return
    if page.total > len(page.entries):
        st.caption(f"The newest {len(page.entries)} of {page.total} analyses.")
    st.caption("Click a row to open it.")
    _table(page.entries, key="hist_table")


def _ecg_view(search: str) -> None:
    """ECG analyses (modality "ecg"); a clicked row opens below."""
    entries = [
        e
        for e in service().ecg_history.entries(500)
        if not search or search.lower() in f"{e.patient_id or ''} {e.filename}".lower()
    ]
    if not entries:
        st.info("No ECG analyses yet — add one on the ECG page.")
        return
    rows = [e.summary() for e in entries]
    event = st.dataframe(
        coloured(rows, "label"), hide_index=True, on_select="rerun",
        selection_mode="single-row", key="hist_ecg_table",
    )  # fmt: skip
    picked = event.selection.rows if event and event.selection else []
    if picked:
        entry = entries[picked[0]]
        st.divider()
        render_ecg(entry, EcgAnalysis.from_dict(entry.result))


def page_history() -> None:
    settings = get_settings()
    st.title("History")
    _deep_link()
    svc = service(settings)
    view_col, search_col = st.columns([1.2, 2], vertical_alignment="bottom")
    view = view_col.segmented_control(
        "View", ("Recordings", "Exams", "ECG"), default="Recordings", key="hist_view"
    )
    search = search_col.text_input(
        "Search", key="hist_search", placeholder="patient/exam id, file name or note"
    ).strip()
    if view == "ECG":
        _ecg_view(search)
        return
    if view == "Exams":
        _exams_view(search)
    else:
        _recordings_view(search)

    shown_id = st.session_state.history_shown
    entry = svc.store.get(shown_id) if shown_id is not None else None
    if entry is None:
        return
    st.divider()
    top, delete_col = st.columns([5, 1], vertical_alignment="center")
    top.markdown(f"**Analysis #{entry.id}**")
    with delete_col.popover("Delete", icon=":material/delete:"):
        st.markdown(f"Delete analysis #{entry.id}? Audio the app saved is deleted too.")
        if st.button("Delete for good", type="primary", key="hist_delete"):
            svc.delete(entry.id)
            st.session_state.history_shown = None
            st.rerun()
    render_entry(entry, settings, key="history")
