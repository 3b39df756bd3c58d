"""The clinic's own labelled recordings: what retraining learns from, with where each came from.

Kept apart from the shared PhysioNet folder and from the analysis history: a table
``training_data`` in the history database and the audio under
``<work_dir>/training_data/``. Every row says who gave the label, on what evidence
(an echocardiogram, a cardiologist's review, …), from which device and site, when, and —
for a label confirmed on an analysed recording — which analysis it came from. Deleting an
analysis from History leaves its confirmed copy here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import utils
from auscult.errors import InvalidRequestError, NotFoundError
from auscult.inbox import audio_extension, write_atomically
from auscult.store import SITES, Database
from config import Settings, get_settings

__all__ = ["LABELS", "ClinicData", "LabelledRecording"]

LABELS = ("normal", "abnormal")
SOURCES = ("upload", "api", "script", "history")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS training_data (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at   TEXT NOT NULL,
    filename     TEXT NOT NULL,
    audio_path   TEXT NOT NULL,
    label        TEXT NOT NULL,
    site         TEXT,
    device       TEXT,
    source       TEXT NOT NULL,
    who          TEXT NOT NULL,
    evidence     TEXT,
    patient_id   TEXT,
    analysis_id  INTEGER,
    note         TEXT,
    duration_s   REAL,
    sample_rate  INTEGER
);
"""


@dataclass(frozen=True)
class LabelledRecording:
    """One recording with a label a person vouched for."""

    id: int
    created_at: str
    filename: str
    audio_path: str
    label: str  # normal | abnormal
    site: str | None
    device: str | None  # e.g. "Littmann 3200", "iPhone 13"
    source: str  # upload | api | script | history
    who: str  # who gave the label
    evidence: str | None  # e.g. "echocardiogram 2026-11-28"
    patient_id: str | None
    analysis_id: int | None  # the analysis whose label was confirmed
    note: str | None
    duration_s: float | None
    sample_rate: int | None


def _text(name: str, value: str | None, limit: int, required: bool = False) -> str | None:
    value = (value or "").strip()
    if len(value) > limit:
        raise InvalidRequestError(f"the {name} is {len(value)} characters; keep it under {limit}")
    if required and not value:
        raise InvalidRequestError(f"say who gave the label ({name}): retraining keeps it")
    return value or None


class ClinicData(Database):
    """The labelled recordings of this installation."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.folder = Path(self.settings.work_dir) / "training_data"
        super().__init__(self.settings.db_path, _SCHEMA)

    def add(
        self,
        data: bytes,
        filename: str,
        *,
        label: str,
        who: str,
        site: str | None = None,
        device: str | None = None,
        evidence: str | None = None,
        patient_id: str | None = None,
        note: str | None = None,
        source: str = "upload",
        analysis_id: int | None = None,
    ) -> LabelledRecording:
        """Check and keep one labelled recording; raises the audio errors for unusable audio."""
        if label not in LABELS:
            raise InvalidRequestError(f"label {label!r}: choose normal or abnormal")
        if site is not None and site not in SITES:
            raise InvalidRequestError(f"unknown site {site!r}; choose one of {', '.join(SITES)}")
        if source not in SOURCES:
            raise InvalidRequestError(f"unknown source {source!r}")
        who = _text("who", who, 100, required=True)
        recording = utils.load_audio(bytes(data), self.settings)  # refuses what cannot train
        name = f"{uuid.uuid4().hex}{audio_extension(data)}"
        path = write_atomically(self.folder, name, bytes(data))  # a full disk: StorageFullError
        row = (
            datetime.now(UTC).isoformat(timespec="seconds"), Path(filename).name or "recording",
            str(path), label, site, _text("device", device, 100), source, who,
            _text("evidence", evidence, 200), _text("patient or exam id", patient_id, 100),
            analysis_id, _text("note", note, 500), recording.duration_s, recording.sample_rate,
        )  # fmt: skip
        try:
            with self._tx() as c:
                cur = c.execute(
                    "INSERT INTO training_data (created_at, filename, audio_path, label, site, "
                    "device, source, who, evidence, patient_id, analysis_id, note, duration_s, "
                    "sample_rate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                new_id = int(cur.lastrowid)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return self.get(new_id)

    def add_file(self, path: Path, **fields) -> LabelledRecording:
        """:meth:`add` for a file on disk (its name kept)."""
        return self.add(Path(path).read_bytes(), Path(path).name, **fields)

    def get(self, item_id: int) -> LabelledRecording:
        with self._tx() as c:
            row = c.execute("SELECT * FROM training_data WHERE id=?", (item_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no labelled recording #{item_id}")
        return LabelledRecording(**dict(row))

    def items(self, label: str | None = None) -> list[LabelledRecording]:
        """Newest first."""
        query, args = "SELECT * FROM training_data", []
        if label is not None:
            query, args = query + " WHERE label=?", [label]
        with self._tx() as c:
            rows = c.execute(query + " ORDER BY id DESC", args).fetchall()
        return [LabelledRecording(**dict(r)) for r in rows]

    def of_analysis(self, analysis_id: int) -> LabelledRecording | None:
        """The newest confirmation of an analysis' label, if any."""
        with self._tx() as c:
            row = c.execute(
                "SELECT * FROM training_data WHERE analysis_id=? ORDER BY id DESC LIMIT 1",
                (analysis_id,),
            ).fetchone()
        return LabelledRecording(**dict(row)) if row else None

    def delete(self, item_id: int) -> None:
        item = self.get(item_id)
        with self._tx() as c:
            c.execute("DELETE FROM training_data WHERE id=?", (item_id,))
        Path(item.audio_path).unlink(missing_ok=True)

    def counts(self) -> dict[str, int]:
        with self._tx() as c:
            rows = c.execute("SELECT label, COUNT(*) FROM training_data GROUP BY label").fetchall()
        return {label: 0 for label in LABELS} | {r[0]: int(r[1]) for r in rows}
