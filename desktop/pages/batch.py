"""Batch page: many recordings at once, a progress bar, a table and the CSV."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import streamlit as st

from auscult.batch import BatchRow, audio_paths, csv_text
from auscult.reading import DISCLAIMER
from config import get_settings
from desktop.resources import model_ready, service
from desktop.result_view import render_entry
from desktop.views import PERCENT_COLUMN, UPLOAD_TYPES, coloured

__all__ = ["page_batch"]


def _chosen_items(files: list[Any], folder: str, run_files: bool, run_folder: bool) -> list | None:
    """What the user asked to analyse, or None; a bad folder puts a message in the session."""
    if run_files and files:
        return [(f.name, f.getvalue()) for f in files]
    if not run_folder:
        return None
    path = Path(folder.strip()).expanduser()
    if not folder.strip() or not path.is_dir():
        st.session_state.batch_error = f"{folder!r} is not a folder on this computer"
        return None
    items = audio_paths([path])
    if not items:
        st.session_state.batch_error = f"no audio files found in {path}"
        return None
    return items


def _show_rows(rows: list[BatchRow]) -> None:
    counts = {lab: sum(r.label == lab for r in rows) for lab in ("normal", "abnormal", "unsure")}
    cols = st.columns(4)
    cols[0].metric("Normal", counts["normal"])
    cols[1].metric("Abnormal", counts["abnormal"])
    cols[2].metric("Unsure", counts["unsure"])
    cols[3].metric("Failed", sum(not r.ok for r in rows))
    st.caption("Click a row to open it.")
    event = st.dataframe(
        coloured(
            [
                r.csv_values()
                | {"probability": None if r.probability is None else 100 * r.probability}
                for r in rows
            ],
            "label",
        ),
        hide_index=True,
        column_config={
            "probability": PERCENT_COLUMN,
            "error": st.column_config.TextColumn("error", width="large"),
        },
        on_select="rerun",
        selection_mode="single-row",
        key="batch_table",
    )
    picked = event.selection.rows if event is not None else []
    if picked:
        st.session_state.batch_shown = rows[picked[0]].entry_id
    st.download_button(
        "Download CSV",
        csv_text(rows),
        file_name=f"auscult-batch-{datetime.now():%Y%m%d-%H%M}.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
    )
    st.caption(DISCLAIMER)
    _show_opened()


def _show_opened() -> None:
    """The batch row the user clicked, in the result view (as History shows it)."""
    entry_id = st.session_state.get("batch_shown")
    entry = service().store.get(entry_id) if entry_id is not None else None
    if entry is None:
        return
    st.divider()
    render_entry(entry, get_settings(), key="batch")


def page_batch() -> None:
    settings = get_settings()
    st.title("Batch analysis")
    st.caption(f":material/medical_information: {DISCLAIMER}")
    if not model_ready(settings):
        return
    st.caption(
        "Many recordings at once. Every result is kept in History; the CSV has the same "
        "columns as `scripts/batch_predict.py`: path, probability, label, duration_s, error, "
        "unsure_reason, quality, heart_rate_bpm, site, warnings, model_version."
    )
    files = st.file_uploader(
        "Recordings",
        type=list(UPLOAD_TYPES),
        accept_multiple_files=True,
        max_upload_size=max(1, get_settings().max_upload_bytes // (1024 * 1024)),
        key="batch_files",
    )
    with st.expander("…or a folder on this computer"):
        folder = st.text_input("Folder (searched recursively)", key="batch_folder")
        run_folder = st.button("Analyse folder", key="batch_folder_go")
    run_files = st.button(
        f"Analyse {len(files)} file{'s' if len(files) != 1 else ''}" if files else "Analyse",
        type="primary",
        disabled=not files,
        icon=":material/play_arrow:",
    )
    items = _chosen_items(files, folder, run_files, run_folder)
    if items:
        st.session_state.batch_error = None
        bar = st.progress(0.0, text=f"0 of {len(items)}")

        def progress(done: int, total: int, row: BatchRow) -> None:
            bar.progress(done / total, text=f"{done} of {total} · {Path(row.path).name}")

        st.session_state.batch_rows = service(settings).run_batch(items, progress=progress)
        bar.empty()

    if st.session_state.batch_error:
        st.error(st.session_state.batch_error, icon=":material/error:")
    if st.session_state.batch_rows:
        _show_rows(st.session_state.batch_rows)
