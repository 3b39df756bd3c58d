"""What several pages of the desktop analyzer share: shown results, tables, times, session.

The result view itself is ``desktop.result_view``.

Only layout: the data comes from :class:`auscult.service.Service` (``desktop.resources``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import streamlit as st

import utils
from auscult.analyzer import AnalysisResult
from auscult.plots import (
    LABEL_COLOURS,
)
from auscult.reading import DISCLAIMER
from auscult.service import Analysed
from auscult.store import Entry
from config import Settings
from desktop.resources import service

#: File endings offered in the upload dialogs.
UPLOAD_TYPES = tuple(e.lstrip(".") for e in utils.SUPPORTED_EXTENSIONS)


@dataclass(frozen=True)
class Shown:
    """One analysis as the result view draws it."""

    key: str  # unique per analysis: caches the rendered figures
    name: str  # file name shown to the user
    source: str
    result: AnalysisResult
    model_input: utils.ModelInput | None  # None when the audio is gone or not loaded yet
    audio_path: str | None = None
    entry_id: int | None = None
    site: str | None = None
    created_at: str | None = None
    reference: str | None = None  # reference label of a demo recording, when known
    patient_id: str | None = None

    @classmethod
    def of(cls, analysed: Analysed, reference: str | None = None) -> Shown:
        e = analysed.entry
        return cls(
            key=f"entry-{e.id}-{e.analysed_at}-{time.monotonic_ns()}",
            name=e.filename,
            source=e.source,
            result=analysed.result,
            model_input=analysed.model_input,
            audio_path=e.audio_path,
            entry_id=e.id,
            site=e.site,
            created_at=e.created_at,
            reference=reference,
            patient_id=e.patient_id,
        )

    @classmethod
    def of_entry(cls, entry: Entry) -> Shown | None:
        """The view of a stored row (plot inputs computed when first drawn); None unless done."""
        analysed = service().analysed(entry)
        if analysed is None:
            return None
        shown = cls.of(analysed)
        return dataclasses.replace(shown, key=f"entry-{entry.id}-{entry.analysed_at}")


def local_time(stamp: str | None) -> str:
    """``2025-01-01 12:00`` in local time from a stored UTC ISO stamp."""
    if not stamp:
        return ""
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return stamp


def quality_word(quality: float, settings: Settings) -> str:
    if quality < settings.min_quality:
        return "poor"
    return "good" if quality >= 0.6 else "fair"


# --------------------------------------------------------------------------------------
# session state: every key, initialised in one place
# --------------------------------------------------------------------------------------
SESSION_DEFAULTS: dict[str, Any] = {
    "page": "analyze",  # the page shown at "/" (tests and deep links set it)
    "current": None,  # Shown on the Analyze page
    "upload_done": None,  # file_id of the last upload analysed (no re-analysis on rerun)
    "upload_error": None,  # (file name, message) of the last bad upload
    "batch_rows": None,  # list[BatchRow] of the last batch
    "batch_error": None,
    "phone_shown": None,  # Shown on the Phone inbox page
    "inbox_seen": None,  # newest inbox entry id when the page was opened
    "history_shown": None,  # Shown on the History page
    "batch_shown": None,  # history id of the batch row opened on the Batch page
    "figures": {},  # (Shown.key, "gauge" | "plot" | "cycles@s" | "why") → PNG (why: + text)
}


def init_session() -> None:
    for key, value in SESSION_DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value.copy() if isinstance(value, dict) else value


PERCENT_COLUMN = st.column_config.ProgressColumn(
    "probability", format="%.0f%%", min_value=0.0, max_value=100.0, color="#868e96"
)
_WORD_COLOURS = {
    "normal": LABEL_COLOURS["normal"],
    "abnormal": LABEL_COLOURS["abnormal"],
    "unsure": LABEL_COLOURS["unsure"],
    "failed": "#868e96",
    "waiting": "#1c7ed6",
    "analysing": "#1c7ed6",
}


def label_word(label: str | None) -> str:
    """What a table says for a label or a status."""
    return {"error": "failed", "pending": "waiting"}.get(label or "", label or "")


def coloured(rows: list[dict[str, Any]], column: str):
    """A table whose ``column`` is written in the label colours (a pandas Styler)."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    return frame.style.map(
        lambda v: f"color: {_WORD_COLOURS[v]}; font-weight: 600" if v in _WORD_COLOURS else "",
        subset=[column],
    )


def status_text(entry: Entry) -> str:
    colours = {"normal": "green", "abnormal": "red", "unsure": "orange"}
    if entry.status == "done" and entry.label:
        return f":{colours.get(entry.label, 'gray')}[**{entry.label}**]"
    if entry.status == "error":
        return ":gray[**failed**]"
    return ":blue[analysing…]" if entry.status == "analysing" else ":blue[waiting…]"


def result_json(shown: Shown) -> str:
    """The downloadable JSON of one analysis (the service's export of its history row)."""
    svc = service()
    if shown.entry_id is not None and (entry := svc.store.get(shown.entry_id)) is not None:
        return svc.export_json(entry, shown.reference)
    return json.dumps(
        {"file": shown.name, "result": shown.result.to_dict(), "disclaimer": DISCLAIMER}
    )
