"""PhysioNet/CinC 2016 layout reader, record-level splits and leave-one-database-out folds.

Splits are always by record: every window of one recording falls on one side only.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from auscult.errors import AuscultError

__all__ = [
    "AUDIO_SUFFIXES",
    "LabelledRecord",
    "lodo_folds",
    "read_physionet",
    "split_records",
]

AUDIO_SUFFIXES = (".wav", ".flac")


@dataclass(frozen=True)
class LabelledRecord:
    """One labelled recording: ``label`` is 1 for abnormal, 0 for normal."""

    name: str
    database: str  # "a" … "f" for training-a … training-f
    path: Path
    label: int


def _audio_path(folder: Path, name: str) -> Path | None:
    for suffix in AUDIO_SUFFIXES:
        candidate = folder / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    return None


def read_physionet(
    root: Path | str, databases: Iterable[str] | None = None
) -> list[LabelledRecord]:
    """Every labelled record under ``root/training-*/REFERENCE.csv`` whose audio exists.

    Labels follow the official convention in the file (1 abnormal, -1 normal) and are
    returned as 1/0. Accepts ``.wav`` (official distribution) and ``.flac``.
    """
    root = Path(root)
    folders = sorted(p for p in root.glob("training-*") if (p / "REFERENCE.csv").exists())
    if not folders:
        raise AuscultError(
            f"no PhysioNet 2016 data found under {root} (expected training-a/REFERENCE.csv …); "
            "download it with `python scripts/download_physionet.py` or set AUSCULT_DATA_DIR"
        )
    wanted = set(databases) if databases is not None else None
    records: list[LabelledRecord] = []
    for folder in folders:
        database = folder.name.removeprefix("training-")
        if wanted is not None and database not in wanted:
            continue
        with open(folder / "REFERENCE.csv", newline="") as f:
            for row in csv.reader(f):
                if len(row) < 2 or not row[0].strip():
                    continue
                name, raw = row[0].strip(), row[1].strip()
                if raw not in {"1", "-1"}:
                    raise AuscultError(
                        f"{folder}/REFERENCE.csv: label {raw!r} for {name} is not 1 or -1"
                    )
                path = _audio_path(folder, name)
                if path is not None:
                    records.append(LabelledRecord(name, database, path, int(raw == "1")))
    return records


def split_records(
    records: Sequence[LabelledRecord], fractions: Sequence[float], seed: int = 42
) -> list[list[LabelledRecord]]:
    """Stratified (database × label) record-level split into ``len(fractions)`` parts.

    Fractions must sum to 1; each stratum is shuffled with ``seed`` and cut in proportion,
    so every database and label is represented on every side.
    """
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions {fractions} must sum to 1")
    rng = np.random.default_rng(seed)
    strata: dict[tuple[str, int], list[LabelledRecord]] = defaultdict(list)
    for record in sorted(records, key=lambda r: r.name):
        strata[(record.database, record.label)].append(record)
    parts: list[list[LabelledRecord]] = [[] for _ in fractions]
    bounds = np.cumsum(fractions)[:-1]
    for key in sorted(strata):
        members = strata[key]
        order = rng.permutation(len(members))
        cuts = np.round(bounds * len(members)).astype(int)
        for part, idx in zip(parts, np.split(order, cuts), strict=False):
            part.extend(members[i] for i in idx)
    return [sorted(p, key=lambda r: r.name) for p in parts]


def lodo_folds(
    records: Sequence[LabelledRecord],
) -> list[tuple[str, list[LabelledRecord], list[LabelledRecord]]]:
    """Leave-one-database-out folds: ``(held-out database, train records, test records)``."""
    databases = sorted({r.database for r in records})
    return [
        (db, [r for r in records if r.database != db], [r for r in records if r.database == db])
        for db in databases
    ]
