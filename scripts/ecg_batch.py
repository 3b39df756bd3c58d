"""Analyse many ECG files: one row per record, optionally one row per beat.

    python scripts/ecg_batch.py ../shared/data/mitdb/100.hea ecg_2026-01-01.csv \
        --output records.csv --beats beats.csv

A WFDB record is given as its ``.hea`` path (its ``.dat``/``.mat`` beside it). A file that
cannot be read gets its ``error`` and the run goes on. CSV files that do not say their rate
take ``--rate``.

records.csv: ``path,duration_s,heart_rate_bpm,rhythm,af_burden,pvc_burden,pac_burden,paced,
quality,label,error``; beats.csv: ``path,time_s,class,probability`` (R-peak time, AAMI class).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import _common
from tqdm import tqdm

from auscult.ecg.analyzer import EcgAnalyzer
from auscult.ecg.reading import load_ecg
from auscult.errors import AuscultError
from config import get_settings

RECORD_COLUMNS = (
    "path",
    "duration_s",
    "heart_rate_bpm",
    "rhythm",
    "af_burden",
    "pvc_burden",
    "pac_burden",
    "paced",
    "quality",
    "label",
    "error",
)
BEAT_COLUMNS = ("path", "time_s", "class", "probability")


def record_row(path: str, analysis=None, error: str = "") -> dict[str, object]:
    if analysis is None:
        return {**dict.fromkeys(RECORD_COLUMNS, ""), "path": path, "error": error}
    r = analysis.rhythm
    return {
        "path": path,
        "duration_s": round(analysis.duration_s, 2),
        "heart_rate_bpm": "" if r.heart_rate_bpm is None else round(r.heart_rate_bpm, 1),
        "rhythm": r.rhythm,
        "af_burden": round(r.af_burden, 4),
        "pvc_burden": round(r.pvc_burden, 4),
        "pac_burden": round(r.pac_burden, 4),
        "paced": "true" if r.paced else "false",
        "quality": round(analysis.quality, 3),
        "label": analysis.label,
        "error": "",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--output", type=Path, required=True, help="records CSV to write")
    p.add_argument("--beats", type=Path, help="beats CSV to write")
    p.add_argument("--rate", type=float, help="sampling rate (Hz) of CSV files that do not say it")
    p.add_argument("--lead", help="lead to analyse (name), else a limb lead or the first")
    a = p.parse_args(argv)
    _common.setup_logging()
    s = get_settings()
    analyzer = EcgAnalyzer(settings=s)
    failed = 0
    with a.output.open("w", newline="") as rec_file:
        records = csv.DictWriter(rec_file, fieldnames=RECORD_COLUMNS)
        records.writeheader()
        beat_file = a.beats.open("w", newline="") if a.beats else None
        beats = csv.writer(beat_file) if beat_file else None
        if beats:
            beats.writerow(BEAT_COLUMNS)
        try:
            for path in tqdm(a.paths, desc="ECG records", unit="rec", file=sys.stderr):
                try:
                    analysis = analyzer.analyze(load_ecg(path, rate_hz=a.rate, settings=s), a.lead)
                except AuscultError as exc:
                    failed += 1
                    records.writerow(record_row(str(path), error=str(exc)))
                    continue
                records.writerow(record_row(str(path), analysis))
                if beats:
                    for t, c, pr in zip(
                        analysis.beat_times_s,
                        analysis.beat_classes,
                        analysis.beat_probabilities,
                        strict=True,
                    ):
                        beats.writerow([str(path), f"{t:.3f}", c, f"{pr:.3f}"])
        finally:
            if beat_file:
                beat_file.close()
    print(
        f"{len(a.paths) - failed} analysed, {failed} could not be read; wrote {a.output}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
