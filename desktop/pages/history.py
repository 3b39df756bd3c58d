"""History page: every analysis kept, filtered, reopened or deleted.

``/history?entry=12`` opens analysis 12 (the link in the "recording analysed" notice).
"""

from __future__ import annotations

import streamlit as st

from auscult.store import SITES, SOURCES
from config import get_settings
from desktop.resources import service
from desktop.views import PERCENT_COLUMN, Shown, coloured, label_word, local_time, render_result

__all__ = ["page_history"]

_RESULTS = ("all", "normal", "abnormal", "unsure", "failed", "waiting")


def _deep_link() -> None:
    """Open the entry named in the address (``?entry=12``) once."""
    wanted = st.query_params.get("entry")
    if wanted and wanted.isdigit():
        st.session_state.history_shown = int(wanted)
        del st.query_params["entry"]


def page_history() -> None:
    settings = get_settings()
    st.title("History")
    _deep_link()
    svc = service(settings)
    f1, f2, f3, f4 = st.columns([1, 1, 1, 1.4])
    source = f1.selectbox("Source", ("all", *SOURCES), key="hist_source")
    label = f2.selectbox("Result", _RESULTS, key="hist_label")
    site = f3.selectbox("Site", ("all", *SITES), key="hist_site")
    patient = f4.text_input("Patient or exam id", key="hist_patient").strip()
    status = {"failed": "error", "waiting": "pending"}.get(label)
    page = svc.history(
        source=None if source == "all" else source,
        label=None if label in ("all", "failed", "waiting") else label,
        status=status,
        site=None if site == "all" else site,
        patient_id=patient or None,
        limit=500,
    )
    entries = page.entries
    if not entries:
        nothing = source == label == site == "all" and not patient
        st.info("No analyses yet." if nothing else "Nothing matches the filter.")
    else:
        if page.total > len(entries):
            st.caption(f"The newest {len(entries)} of {page.total} analyses.")
        st.dataframe(
            coloured(
                [
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
                ],
                "result",
            ),
            hide_index=True,
            column_config={
                "probability": PERCENT_COLUMN,
                "quality": st.column_config.NumberColumn("quality", format="%.2f"),
                "duration_s": st.column_config.NumberColumn("duration (s)", format="%.1f"),
                "error": st.column_config.TextColumn("error", width="large"),
            },
            height=min(400, 38 + 35 * len(entries)),
        )
        by_id = {e.id: e for e in entries}
        pick, open_col, delete_col = st.columns([3, 0.6, 0.6], vertical_alignment="bottom")
        chosen = pick.selectbox(
            "Entry",
            list(by_id),
            format_func=lambda i: f"#{i} · {local_time(by_id[i].created_at)} · {by_id[i].filename}",
            key="hist_pick",
        )
        if open_col.button("Open", icon=":material/open_in_new:", type="primary", key="hist_open"):
            st.session_state.history_shown = chosen
        with delete_col.popover("Delete", icon=":material/delete:"):
            st.markdown(f"Delete entry #{chosen}? Audio the app saved is deleted too.")
            if st.button("Delete for good", type="primary", key="hist_delete"):
                svc.delete(chosen)
                if st.session_state.history_shown == chosen:
                    st.session_state.history_shown = None
                st.rerun()

    shown_id = st.session_state.history_shown
    entry = svc.store.get(shown_id) if shown_id is not None else None
    if entry is None:
        return
    st.divider()
    if entry.status == "error":
        st.error(f"**{entry.filename}** could not be analysed: {entry.error}")
    elif entry.status in ("pending", "analysing"):
        st.info(f"**{entry.filename}** is being analysed; it opens here when it is done.")
    else:
        render_result(Shown.of_entry(entry), settings, key="history")
