"""Build the training feature cache from the PhysioNet 2016 folder, one process.

    python scripts/preprocess.py [--data-dir DIR] [--out data/cache/physionet2016]

Deterministic: the same data and config give byte-identical files. Writes
``features.npy``, ``manifest.csv`` and ``preprocessing.json`` (the log-mel, see
``auscult/cache.py``) and ``cycle_features.npz`` (each record's heart-cycle features), so
that training starts from features computed once.
``scripts/fast_batch_process.py`` writes the same files with a process pool.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _common  # noqa: F401  (import path)

from auscult.cache import build_cache, cycle_features_of, write_cache
from auscult.datasets import read_physionet
from config import get_settings


def parse_args(default_workers: int = 1) -> argparse.Namespace:
    s = get_settings()
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-dir", type=Path, default=s.data_dir, help="PhysioNet 2016 folder")
    p.add_argument("--out", type=Path, default=s.cache_dir / "physionet2016", help="cache folder")
    p.add_argument("--workers", type=int, default=default_workers, help="processes")
    p.add_argument("--limit", type=int, default=0, help="only the first N records (smoke tests)")
    return p.parse_args()


def main(default_workers: int = 1) -> None:
    args = parse_args(default_workers)
    started = time.perf_counter()
    records = read_physionet(args.data_dir)
    if args.limit:
        records = records[: args.limit]
    cached = build_cache(records, workers=args.workers)
    write_cache(args.out, cached)
    cycle_features_of(records, args.out, workers=args.workers)
    frames = sum(c.features.shape[1] for c in cached)
    hours = sum(c.duration_s for c in cached) / 3600
    print(
        f"cached {len(cached)} records ({hours:.2f} h, {frames} frames) into {args.out} "
        f"in {time.perf_counter() - started:.1f} s with {args.workers} process(es)"
    )


if __name__ == "__main__":
    main()
