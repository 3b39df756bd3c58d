"""ECG analyses in history: a table ``ecg_analyses`` beside the heart-sound one, the files
kept under ``<work_dir>/uploads/ecg/<id>/`` so the strip can be drawn again."""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auscult.errors import NotFoundError
from auscult.inbox import write_atomically
from auscult.store import Database
from config import Settings, get_settings

__all__ = ["EcgEntry", "EcgHistory"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ecg_analyses (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at   TEXT NOT NULL,
    source       TEXT NOT NULL,
    filename     TEXT NOT NULL,
    folder       TEXT NOT NULL,
    patient_id   TEXT,
    label        TEXT NOT NULL,
    rhythm       TEXT NOT NULL,
    heart_rate   REAL,
    duration_s   REAL NOT NULL,
    quality      REAL NOT NULL,
    lead         TEXT,
    rate_hz      REAL,
    result_json  TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class EcgEntry:
    """One stored ECG analysis."""

    id: int
    created_at: str
    source: str
    filename: str
    folder: str
    patient_id: str | None
    label: str
    rhythm: str
    heart_rate: float | None
    duration_s: float
    quality: float
    lead: str | None
    rate_hz: float | None  # the rate given for a CSV that did not say it
    result: dict[str, Any]

    @property
    def files(self) -> list[tuple[str, bytes]]:
        """The uploaded files, as given (to draw the strip again)."""
        folder = Path(self.folder)
        if not folder.exists():
            raise NotFoundError(f"the files of ECG analysis #{self.id} are no longer here")
        return [
            (p.name, p.read_bytes()) for p in sorted(folder.iterdir()) if not p.name.startswith(".")
        ]

    def summary(self) -> dict[str, Any]:
        """The row without the beat list (for lists)."""
        return {
            "id": self.id,
            "created_at": self.created_at,
            "modality": "ecg",
            "source": self.source,
            "filename": self.filename,
            "patient_id": self.patient_id,
            "label": self.label,
            "rhythm": self.rhythm,
            "heart_rate_bpm": self.heart_rate,
            "duration_s": self.duration_s,
            "quality": self.quality,
        }


class EcgHistory(Database):
    """ECG rows in the history database; files under ``uploads/ecg``."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        super().__init__(self.settings.db_path, _SCHEMA)

    @property
    def folder(self) -> Path:
        return self.settings.uploads_dir / "ecg"

    def add(
        self,
        files: list[tuple[str, bytes]],
        result: dict[str, Any],
        *,
        source: str,
        patient_id: str | None = None,
        lead: str | None = None,
        rate_hz: float | None = None,
    ) -> EcgEntry:
        """Keep the files and the result; the row appears only once its files are in place."""
        folder = self.folder / uuid.uuid4().hex
        folder.mkdir(parents=True)
        try:
            for name, data in files:
                write_atomically(folder, Path(name).name or "upload", data)
            with self._tx() as db:
                cur = db.execute(
                    "INSERT INTO ecg_analyses (created_at, source, filename, folder, patient_id,"
                    " label, rhythm, heart_rate, duration_s, quality, lead, rate_hz, result_json)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        datetime.now(UTC).isoformat(timespec="milliseconds"),
                        source,
                        ", ".join(Path(n).name for n, _ in files),
                        str(folder),
                        patient_id,
                        result["label"],
                        result["rhythm"],
                        result.get("heart_rate_bpm"),
                        result["duration_s"],
                        result["quality"],
                        lead,
                        rate_hz,
                        json.dumps(result),
                    ),
                )
                entry_id = int(cur.lastrowid or 0)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return self.get(entry_id)

    @staticmethod
    def _entry(row: Any) -> EcgEntry:
        data = dict(row)
        data["result"] = json.loads(data.pop("result_json"))
        return EcgEntry(**data)

    def get(self, entry_id: int) -> EcgEntry:
        with self._tx() as db:
            row = db.execute("SELECT * FROM ecg_analyses WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"there is no ECG analysis #{entry_id}")
        return self._entry(row)

    def entries(self, limit: int = 200, patient_id: str | None = None) -> list[EcgEntry]:
        query, args = "SELECT * FROM ecg_analyses", []
        if patient_id:
            query += " WHERE patient_id = ?"
            args.append(patient_id)
        with self._tx() as db:
            rows = db.execute(query + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [self._entry(r) for r in rows]

    def delete(self, entry_id: int) -> None:
        entry = self.get(entry_id)
        with self._tx() as db:
            db.execute("DELETE FROM ecg_analyses WHERE id = ?", (entry_id,))
        shutil.rmtree(entry.folder, ignore_errors=True)
