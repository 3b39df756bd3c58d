"""History of recordings and analyses in SQLite: one store for the analyzer, phone page and API.

A recording enters as a *pending* row (its audio already written atomically to disk), is
*claimed* by one analysis worker (status *analysing*; a claim older than ``stale_after_s``
is taken over, so a killed worker loses nothing), and is then marked *done* with its result
or *error* with a human message. Rows are written in one
transaction each, so a crash never leaves half a row. SQLite's WAL mode lets the phone page
write while the analyzer reads.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["SITES", "SOURCES", "Entry", "Store"]

#: Where a recording came from.
SOURCES = ("upload", "phone", "batch", "demo", "api", "inbox")
#: Auscultation sites offered on the phone page.
SITES = ("aortic", "pulmonic", "tricuspid", "mitral")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS analyses (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at   TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    site         TEXT,
    filename     TEXT    NOT NULL,
    audio_path   TEXT,
    status       TEXT    NOT NULL DEFAULT 'pending',
    label        TEXT,
    probability  REAL,
    duration_s   REAL,
    result_json  TEXT,
    error        TEXT,
    analysed_at  TEXT,
    patient_id   TEXT,
    note         TEXT,
    quality      REAL,
    elapsed_ms   REAL,
    claimed_at   TEXT,
    client_id    TEXT
);
CREATE INDEX IF NOT EXISTS analyses_status ON analyses(status);
CREATE UNIQUE INDEX IF NOT EXISTS analyses_audio_path ON analyses(audio_path)
    WHERE audio_path IS NOT NULL;
"""
#: Created after the columns it needs exist (older files get them by ALTER TABLE first).
_LATE_INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS analyses_client_id ON analyses(source, client_id)
    WHERE client_id IS NOT NULL;
"""


#: Columns added after the first release: ``ALTER TABLE`` brings older history files up to date.
_ADDED_COLUMNS = {
    "patient_id": "TEXT",
    "note": "TEXT",
    "quality": "REAL",
    "elapsed_ms": "REAL",
    "claimed_at": "TEXT",
    "client_id": "TEXT",
}
#: Row states: waiting, being analysed by a worker, finished, failed with a message.
STATUSES = ("pending", "analysing", "done", "error")
#: A recording whose file is being moved into the inbox (see ``inbox.deliver_recording``):
#: not listed, not analysed; ``recover_receiving`` settles it after a crash.
RECEIVING = "receiving"


@dataclass(frozen=True)
class Entry:
    """One row of history."""

    id: int
    created_at: str
    source: str
    site: str | None
    filename: str
    audio_path: str | None
    status: str  # pending | analysing | done | error
    label: str | None
    probability: float | None
    duration_s: float | None
    result: dict[str, Any] | None
    error: str | None
    analysed_at: str | None
    patient_id: str | None = None
    note: str | None = None
    quality: float | None = None
    elapsed_ms: float | None = None  # time the analysis itself took
    claimed_at: str | None = None
    client_id: str | None = None  # the sender's id for the recording (idempotent retries)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Database:
    """One SQLite file shared by the threads of a process: private to this user (health
    data), write-ahead logged (other processes read while one writes), rows by column name."""

    def __init__(self, path: Path | str, schema: str) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10.0)
        if str(path) != ":memory:":
            os.chmod(self.path, 0o600)
        self._conn.row_factory = sqlite3.Row
        with self._lock, self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(schema)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._conn:
            yield self._conn


class Store(Database):
    """SQLite-backed history; safe to share between threads of one process."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(path, _SCHEMA)
        with self._tx() as c:
            have = {r["name"] for r in c.execute("PRAGMA table_info(analyses)")}
            for column, kind in _ADDED_COLUMNS.items():
                if column not in have:
                    c.execute(f"ALTER TABLE analyses ADD COLUMN {column} {kind}")
            c.executescript(_LATE_INDEXES)

    # --- writing -----------------------------------------------------------------------
    def add_pending(
        self,
        *,
        source: str,
        filename: str,
        audio_path: Path | str | None = None,
        site: str | None = None,
        patient_id: str | None = None,
        note: str | None = None,
    ) -> int:
        """Register a recording to analyse; returns its id (existing id if the file is known)."""
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
        if site is not None and site not in SITES:
            raise ValueError(f"unknown auscultation site {site!r}; expected one of {SITES}")
        path = str(audio_path) if audio_path is not None else None
        with self._tx() as c:
            if path is not None:
                row = c.execute("SELECT id FROM analyses WHERE audio_path = ?", (path,)).fetchone()
                if row:
                    return int(row["id"])
            try:
                cur = c.execute(
                    "INSERT INTO analyses (created_at, source, site, filename, audio_path, "
                    "patient_id, note) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (_now(), source, site, filename, path, patient_id, note),
                )
            except sqlite3.IntegrityError:  # another process registered the file just now
                row = c.execute("SELECT id FROM analyses WHERE audio_path = ?", (path,)).fetchone()
                if row is None:
                    raise
                return int(row["id"])
            return int(cur.lastrowid)

    def add_receiving(
        self,
        *,
        source: str,
        filename: str,
        audio_path: Path | str,
        site: str | None = None,
        client_id: str | None = None,
        patient_id: str | None = None,
    ) -> int:
        """Register a recording whose file is about to be moved into place; returns its id.

        Raises ``sqlite3.IntegrityError`` when ``client_id`` (or the path) is known already.
        """
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO analyses (created_at, source, site, filename, audio_path, status, "
                "client_id, patient_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (_now(), source, site, filename, str(audio_path), RECEIVING, client_id,
                 patient_id),
            )  # fmt: skip
            return int(cur.lastrowid)

    def mark_pending(self, entry_id: int) -> bool:
        """The file is in place: the worker may analyse it now. False when the row is gone
        (a retry of the same recording took over after this delivery stalled)."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE analyses SET status='pending' WHERE id=? AND status=?",
                (entry_id, RECEIVING),
            )
            return cur.rowcount == 1

    def by_client_id(self, source: str, client_id: str) -> Entry | None:
        with self._tx() as c:
            row = c.execute(
                "SELECT * FROM analyses WHERE source=? AND client_id=?", (source, client_id)
            ).fetchone()
        return self._entry(row) if row else None

    def recover_receiving(self, older_than_s: float = 120.0) -> tuple[int, int]:
        """Settle deliveries a crash interrupted: file in place → pending, else row removed.

        Returns (rows made pending, rows removed). Only rows older than ``older_than_s`` are
        touched, so a delivery in progress in another process is left alone.
        """
        cutoff = datetime.fromtimestamp(datetime.now(UTC).timestamp() - older_than_s, UTC)
        with self._tx() as c:
            rows = c.execute(
                "SELECT id, audio_path FROM analyses WHERE status=? AND created_at < ?",
                (RECEIVING, cutoff.isoformat(timespec="milliseconds")),
            ).fetchall()
            pending, removed = 0, 0
            for row in rows:
                if row["audio_path"] and Path(row["audio_path"]).is_file():
                    c.execute("UPDATE analyses SET status='pending' WHERE id=?", (row["id"],))
                    pending += 1
                else:  # the sender got no answer and will send it again
                    c.execute("DELETE FROM analyses WHERE id=?", (row["id"],))
                    removed += 1
        return pending, removed

    def claim_next(self, stale_after_s: float = 120.0) -> Entry | None:
        """Take the oldest waiting recording for analysis (``None`` when there is none).

        One UPDATE marks it *analysing*, so two workers never analyse the same row; a claim
        older than ``stale_after_s`` (its worker was killed) can be taken again.
        """
        cutoff = datetime.fromtimestamp(datetime.now(UTC).timestamp() - stale_after_s, UTC)
        with self._tx() as c:
            row = c.execute(
                "UPDATE analyses SET status='analysing', claimed_at=? WHERE id = ("
                " SELECT id FROM analyses WHERE status='pending'"
                " OR (status='analysing' AND claimed_at < ?) ORDER BY id LIMIT 1"
                ") RETURNING *",
                (_now(), cutoff.isoformat(timespec="milliseconds")),
            ).fetchone()
        return self._entry(row) if row else None

    def complete(self, entry_id: int, result: dict[str, Any], elapsed_ms: float | None = None):
        """Store a finished analysis (``result`` is the analyzer result as a dict)."""
        with self._tx() as c:
            c.execute(
                "UPDATE analyses SET status='done', label=?, probability=?, duration_s=?, "
                "quality=?, result_json=?, error=NULL, analysed_at=?, elapsed_ms=? WHERE id=?",
                (
                    result.get("label"),
                    result.get("probability"),
                    result.get("duration_s"),
                    result.get("quality"),
                    json.dumps(result),
                    _now(),
                    elapsed_ms,
                    entry_id,
                ),
            )

    def fail(self, entry_id: int, message: str, elapsed_ms: float | None = None) -> None:
        """Mark an analysis as failed with a human message; the audio file is kept."""
        with self._tx() as c:
            c.execute(
                "UPDATE analyses SET status='error', error=?, analysed_at=?, elapsed_ms=? "
                "WHERE id=?",
                (message, _now(), elapsed_ms, entry_id),
            )

    def record(
        self,
        *,
        source: str,
        filename: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        audio_path: Path | str | None = None,
        site: str | None = None,
        patient_id: str | None = None,
        note: str | None = None,
        elapsed_ms: float | None = None,
    ) -> int:
        """Add a finished analysis (or failure) in one call; returns its id."""
        entry_id = self.add_pending(
            source=source,
            filename=filename,
            audio_path=audio_path,
            site=site,
            patient_id=patient_id,
            note=note,
        )
        if result is not None:
            self.complete(entry_id, result, elapsed_ms)
        else:
            self.fail(entry_id, error or "analysis failed", elapsed_ms)
        return entry_id

    def delete(self, entry_id: int) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM analyses WHERE id=?", (entry_id,))

    # --- reading -----------------------------------------------------------------------
    @staticmethod
    def _entry(row: sqlite3.Row) -> Entry:
        data = dict(row)
        raw = data.pop("result_json")
        return Entry(**data, result=json.loads(raw) if raw else None)

    def get(self, entry_id: int) -> Entry | None:
        with self._tx() as c:
            row = c.execute("SELECT * FROM analyses WHERE id=?", (entry_id,)).fetchone()
        return self._entry(row) if row else None

    def pending(self) -> list[Entry]:
        """Recordings waiting for analysis, oldest first."""
        with self._tx() as c:
            rows = c.execute("SELECT * FROM analyses WHERE status='pending' ORDER BY id").fetchall()
        return [self._entry(r) for r in rows]

    def known_paths(self) -> set[str]:
        with self._tx() as c:
            rows = c.execute("SELECT audio_path FROM analyses WHERE audio_path IS NOT NULL")
            return {r["audio_path"] for r in rows}

    def entries(self, *, limit: int = 500, offset: int = 0, **filters: Any) -> list[Entry]:
        """Newest first, optionally filtered (the filters of :meth:`_where`)."""
        where, args = self._where(**filters)
        with self._tx() as c:
            rows = c.execute(
                f"SELECT * FROM analyses WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
        return [self._entry(r) for r in rows]

    def count(self, **filters: Any) -> int:
        """How many rows :meth:`entries` would list with these filters and no limit."""
        where, args = self._where(**filters)
        with self._tx() as c:
            row = c.execute(f"SELECT COUNT(*) FROM analyses WHERE {where}", args).fetchone()
        return int(row[0])

    @staticmethod
    def _where(
        source: str | None = None,
        label: str | None = None,
        status: str | None = None,
        site: str | None = None,
        patient_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        since_id: int = 0,
        search: str | None = None,
    ) -> tuple[str, list[Any]]:
        """SQL condition and arguments of a history filter (column names are fixed here);
        ``since``/``until`` are ISO times (UTC), ``since_id`` lists only newer rows, ``search``
        finds text anywhere in the patient/exam id, file name or note (any case)."""
        clauses, args = ["id > ?", "status != ?"], [since_id, RECEIVING]
        for column, value in (
            ("source", source),
            ("label", label),
            ("status", status),
            ("site", site),
            ("patient_id", patient_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            clauses.append("created_at >= ?")
            args.append(since)
        if until is not None:
            clauses.append("created_at < ?")
            args.append(until)
        if search:
            pattern = (
                "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            )
            clauses.append(
                "(patient_id LIKE ? ESCAPE '\\' OR filename LIKE ? ESCAPE '\\' "
                "OR note LIKE ? ESCAPE '\\')"
            )
            args.extend([pattern] * 3)
        return " AND ".join(clauses), args
