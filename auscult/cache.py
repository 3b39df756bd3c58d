"""Feature cache for training: log-mel (dB, before per-band normalisation) of whole records.

The cache stores what ``utils.log_mel_db(utils.prepare_signal(...))`` returns for each
record, so training applies augmentation (noise is added in the power domain) and then the
same ``utils.normalise_bands`` the analyzer uses. Layout of a cache folder:

- ``features.npy``  — ``(n_mels, total_frames)`` float16, records concatenated in order
- ``manifest.csv``  — ``name,database,label,path,offset,n_frames,duration_s``
- ``preprocessing.json`` — the front-end constants it was built with
- ``cycle_features.npz`` — heart-cycle features per record (``auscult.cycle_features``),
  with the record names, feature names and reading version they belong to
"""

from __future__ import annotations

import csv
import json
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import utils
from auscult.cycle_features import FEATURE_NAMES, READING_VERSION, recording_cycle_features
from auscult.datasets import LabelledRecord
from auscult.errors import AuscultError
from config import Settings, get_settings

__all__ = [
    "CachedRecord",
    "build_cache",
    "cycle_features_of",
    "check_cache",
    "load_cache",
    "record_features",
    "write_cache",
]

MANIFEST_FIELDS = ("name", "database", "label", "path", "offset", "n_frames", "duration_s")
#: Front-end constants applied after the cached dB log-mel (features, windows): a cache
#: built under other values of these is still valid.
AFTER_CACHE = frozenset({"band_group", "window_s", "window_hop_s"})


def _cached_constants(preprocessing: dict) -> dict:
    return {k: v for k, v in preprocessing.items() if k not in AFTER_CACHE}


@dataclass(frozen=True)
class CachedRecord:
    record: LabelledRecord
    features: np.ndarray  # (n_mels, n_frames) dB log-mel
    duration_s: float


def record_features(path: Path, settings: Settings | None = None) -> tuple[np.ndarray, float]:
    """dB log-mel of one whole recording through the one front-end path, and its duration."""
    s = settings or get_settings()
    recording = utils.load_audio(path, s)
    x = utils.prepare_signal(recording.samples, recording.sample_rate, s)
    return utils.log_mel_db(x, s), recording.duration_s


def _each(job: Callable[[Any], Any], jobs: list[Any], workers: int, desc: str) -> list[Any]:
    """``job`` of every item in order, with a progress bar; ``workers > 1``: a process pool."""
    progress = dict(total=len(jobs), desc=desc, unit="rec")
    if workers > 1:
        # forkserver, not fork: a process that has started threads (LiteRT, OpenMP via the
        # ECG module's libraries) can deadlock a forked child on a lock held at fork time.
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            return list(tqdm(pool.map(job, jobs, chunksize=16), **progress))
    return [job(item) for item in tqdm(jobs, **progress)]


def _features_job(args: tuple[Path, Settings]) -> tuple[np.ndarray, float]:
    return record_features(*args)


def build_cache(
    records: Sequence[LabelledRecord], settings: Settings | None = None, workers: int = 1
) -> list[CachedRecord]:
    """Compute features for every record, in order; ``workers > 1`` uses a process pool."""
    s = settings or get_settings()
    results = _each(_features_job, [(r.path, s) for r in records], workers, "log-mel")
    return [CachedRecord(r, f, d) for r, (f, d) in zip(records, results, strict=False)]


def write_cache(
    folder: Path, cached: Sequence[CachedRecord], settings: Settings | None = None
) -> None:
    """Write features, manifest and preprocessing constants into ``folder``."""
    s = settings or get_settings()
    folder.mkdir(parents=True, exist_ok=True)
    offsets = np.cumsum([0] + [c.features.shape[1] for c in cached])
    stacked = np.concatenate([c.features for c in cached], axis=1).astype(np.float16)
    np.save(folder / "features.npy", stacked)
    with open(folder / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MANIFEST_FIELDS)
        for c, offset in zip(cached, offsets, strict=False):
            r = c.record
            writer.writerow(
                [
                    r.name,
                    r.database,
                    r.label,
                    str(r.path),
                    int(offset),
                    c.features.shape[1],
                    f"{c.duration_s:.3f}",
                ]
            )
    (folder / "preprocessing.json").write_text(json.dumps(s.preprocessing(), indent=2) + "\n")


def check_cache(folder: Path, settings: Settings | None = None) -> None:
    """Raise :class:`AuscultError` unless ``folder`` holds a cache built with these constants."""
    s = settings or get_settings()
    config_path = folder / "preprocessing.json"
    if not config_path.exists():
        raise AuscultError(
            f"no feature cache at {folder}; run `python scripts/fast_batch_process.py`"
        )
    built = _cached_constants(json.loads(config_path.read_text()))
    if built != _cached_constants(s.preprocessing()):
        raise AuscultError(
            f"the feature cache at {folder} was built with other preprocessing constants; "
            "rebuild it with `python scripts/fast_batch_process.py`"
        )


def load_cache(folder: Path, settings: Settings | None = None) -> list[CachedRecord]:
    """Read a cache written by :func:`write_cache`; refuse one built with other constants."""
    check_cache(folder, settings)
    stacked = np.load(folder / "features.npy").astype(np.float32)
    cached: list[CachedRecord] = []
    with open(folder / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            offset, n = int(row["offset"]), int(row["n_frames"])
            record = LabelledRecord(
                row["name"], row["database"], Path(row["path"]), int(row["label"])
            )
            cached.append(
                CachedRecord(record, stacked[:, offset : offset + n], float(row["duration_s"]))
            )
    return cached


def _cycle_job(args: tuple[Path, Settings]) -> np.ndarray:
    path, s = args
    return recording_cycle_features(utils.load_audio(path, s), s)


def cycle_features_of(
    records: Sequence[LabelledRecord], folder: Path, settings: Settings | None = None,
    workers: int = 1, save: bool = True,
) -> np.ndarray:  # fmt: skip
    """``(n_records, n_features)`` heart-cycle features, read from ``folder`` when it holds
    these records under these constants, else computed (in parallel) and, with ``save``,
    saved there (a subset for a smoke run must not replace the full set)."""
    s = settings or get_settings()
    path = folder / "cycle_features.npz"
    names = [r.name for r in records]
    constants = {**_cached_constants(s.preprocessing()), "cycle_reading": READING_VERSION}
    stamp = json.dumps(constants, sort_keys=True)
    if path.exists():
        saved = np.load(path, allow_pickle=False)
        if (
            list(saved["names"]) == names
            and tuple(saved["columns"]) == FEATURE_NAMES
            and str(saved["preprocessing"]) == stamp
        ):
            return saved["x"]
    rows = _each(_cycle_job, [(r.path, s) for r in records], workers, "heart cycles")
    x = np.vstack(rows) if rows else np.zeros((0, len(FEATURE_NAMES)))
    if not save:
        return x
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, names=np.array(names), columns=np.array(FEATURE_NAMES),
             preprocessing=np.array(stamp))  # fmt: skip
    return x
