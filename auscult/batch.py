"""Analyse many recordings in one go: one row per input, a broken file never stops the run.

UI-free and shared by the desktop app's Batch page and ``scripts/batch_predict.py``, so both
write the same CSV (ARCHITECTURE.md §3)::

    path,probability,label,duration_s,error,unsure_reason,quality,heart_rate_bpm,site,warnings,
    model_version

A file that cannot be analysed gets an empty probability and label and a human message in
``error``; the run goes on with the next file.

Examples
--------
>>> from auscult.analyzer import Analyzer
>>> from auscult.batch import analyze_many, audio_paths, write_csv
>>> rows = analyze_many(audio_paths(["recordings/"]), Analyzer())   # doctest: +SKIP
>>> write_csv(rows, "results.csv")                                   # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from auscult.errors import AuscultError
from utils import SUPPORTED_EXTENSIONS

if TYPE_CHECKING:
    from auscult.analyzer import AnalysisResult, Analyzer

__all__ = [
    "CSV_COLUMNS",
    "BatchItem",
    "BatchRow",
    "analyze_many",
    "analyze_one",
    "audio_paths",
    "csv_text",
    "write_csv",
    "write_jsonl",
]

log = logging.getLogger(__name__)

#: The batch CSV contract: this order, extended at the end only, never renamed.
CSV_COLUMNS = (
    "path", "probability", "label", "duration_s", "error", "unsure_reason",
    "quality", "heart_rate_bpm", "site", "warnings", "model_version",
)  # fmt: skip

#: One input: a file path, or ``(name, encoded bytes)`` for uploads held in memory.
BatchItem = str | Path | tuple[str, bytes]

#: ``progress(done, total, row)`` is called after each file.
ProgressCallback = Callable[[int, int, "BatchRow"], None]


@dataclass(frozen=True)
class BatchRow:
    """The outcome for one input file: a result or a human error message, never both."""

    path: str  # the path as given, or the upload's name
    probability: float | None  # record-level probability of "abnormal"; None on error
    label: str  # "normal" | "abnormal" | "unsure"; "" on error
    duration_s: float | None
    error: str  # "" when the analysis succeeded
    result: AnalysisResult | None = None  # the full result, for storing in history
    site: str | None = None  # auscultation site, when the caller knows it
    entry_id: int | None = None  # its history row, once stored (opens like a History row)

    @property
    def ok(self) -> bool:
        return not self.error

    def csv_values(self) -> dict[str, str]:
        """The row as the CSV contract spells it (empty strings for missing values)."""
        r = self.result
        return {
            "path": self.path,
            "probability": "" if self.probability is None else f"{self.probability:.4f}",
            "label": self.label,
            "duration_s": "" if self.duration_s is None else f"{self.duration_s:.2f}",
            "error": self.error,
            "unsure_reason": self.unsure_reason,
            "quality": "" if r is None else f"{r.quality:.2f}",
            "heart_rate_bpm": ""
            if r is None or r.heart_rate_bpm is None
            else f"{r.heart_rate_bpm:.0f}",
            "site": self.site or "",
            # e.g. a truncated file: analysed, but the reader must know it was not whole
            "warnings": "" if r is None else "; ".join(r.warnings),
            "model_version": "" if r is None else r.model_version,
        }

    @property
    def unsure_reason(self) -> str:
        """Why the answer is "unsure": "quality" (too poor to judge), "borderline" or ""."""
        if self.result is None or self.label != "unsure":
            return ""
        return "borderline" if self.result.borderline else "quality"


def _item_source(item: BatchItem) -> tuple[str, bytes | Path]:
    if isinstance(item, tuple):
        name, data = item
        return str(name), bytes(data)
    return str(item), Path(item)


def analyze_one(item: BatchItem, analyzer: Analyzer) -> BatchRow:
    """Analyse one input; any failure becomes a row with a human message."""
    name, source = _item_source(item)
    try:
        result = analyzer.analyze(source)
    except AuscultError as exc:  # the message is written for a person already
        return BatchRow(name, None, "", None, str(exc))
    except Exception as exc:  # one broken file must not stop the run
        log.exception("unexpected failure analysing %s", name)
        return BatchRow(
            name,
            None,
            "",
            None,
            f"could not analyse this file ({type(exc).__name__}: {exc})",
        )
    return BatchRow(name, result.probability, result.label, result.duration_s, "", result)


def analyze_many(
    items: Iterable[BatchItem],
    analyzer: Analyzer,
    progress: ProgressCallback | None = None,
) -> list[BatchRow]:
    """Analyse every input in order; one row per input, in the same order.

    Parameters
    ----------
    items
        File paths (``str`` / ``Path``) or ``(name, bytes)`` pairs; use :func:`audio_paths`
        to expand folders first.
    analyzer
        A loaded :class:`~auscult.analyzer.Analyzer` (the model is loaded once, by the caller).
    progress
        Called as ``progress(done, total, row)`` after each input.
    """
    items = list(items)
    rows: list[BatchRow] = []
    for i, item in enumerate(items, start=1):
        row = analyze_one(item, analyzer)
        rows.append(row)
        if progress is not None:
            progress(i, len(items), row)
    return rows


def audio_paths(
    inputs: Iterable[str | Path], extensions: Sequence[str] = SUPPORTED_EXTENSIONS
) -> list[Path]:
    """Expand files and folders (recursively) into audio file paths, sorted within each folder.

    Files named explicitly are kept whatever their ending (so a wrong file gets an error row
    rather than vanishing); folders contribute files with a supported ending, skipping
    hidden files such as half-written ``.part`` uploads.
    """
    wanted = {e.lower() for e in extensions}
    out: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            out.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix.lower() in wanted and not p.name.startswith(".")
            )
        else:
            out.append(path)
    return out


def write_csv(rows: Iterable[BatchRow], target: str | Path | TextIO) -> None:
    """Write rows in the CSV contract to a path or an open text file."""
    if isinstance(target, (str, Path)):
        with open(target, "w", newline="", encoding="utf-8") as f:
            write_csv(rows, f)
        return
    writer = csv.DictWriter(target, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row.csv_values())


def write_jsonl(rows: Iterable[BatchRow], path: str | Path) -> None:
    """One JSON object per row: path, error, and the full result (null on error)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for row in rows:
            result = row.result.to_dict() if row.result is not None else None
            f.write(json.dumps({"path": row.path, "error": row.error, "result": result}) + "\n")


def csv_text(rows: Iterable[BatchRow]) -> str:
    """The CSV as a string (for downloads)."""
    buf = io.StringIO()
    write_csv(rows, buf)
    return buf.getvalue()
