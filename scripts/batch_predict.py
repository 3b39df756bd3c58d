"""Analyse many recordings and write one CSV row per file.

    python scripts/batch_predict.py PATH [PATH ...] --output results.csv [--json results.jsonl]

PATHs are files or folders (searched recursively for any supported audio format). Columns, in
this order: ``path,probability,label,duration_s,error,unsure_reason,quality,heart_rate_bpm,
site,warnings,model_version`` (label is normal, abnormal or unsure; unsure_reason is "quality"
or "borderline" for an unsure row). ``--json`` also writes one JSON object per file (JSON
Lines): the path, the error, and the analyzer's full result.
A file that cannot be analysed gets an empty probability and label and a human message in
``error``; the run continues. Progress is shown on stderr. Exits 0 when the run finished,
even if some files failed; 2 when there is nothing to analyse or the model cannot load.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _common
from tqdm import tqdm

from auscult.analyzer import Analyzer
from auscult.batch import analyze_many, audio_paths, write_csv, write_jsonl
from auscult.errors import AuscultError


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("paths", nargs="+", type=Path, help="audio files or folders")
    p.add_argument("--output", "-o", type=Path, required=True, help="CSV file to write")
    p.add_argument("--json", type=Path, help="also write JSON Lines with the full results")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    _common.setup_logging()
    paths = audio_paths(args.paths)
    if not paths:
        print("no audio files found in the given paths", file=sys.stderr)
        return 2
    try:
        analyzer = Analyzer()
    except AuscultError as exc:
        print(f"cannot load the model: {exc}", file=sys.stderr)
        return 2
    with tqdm(total=len(paths), desc="analysing", unit="file", file=sys.stderr) as bar:
        rows = analyze_many(paths, analyzer, progress=lambda done, total, row: bar.update(1))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.output)
    if args.json:
        write_jsonl(rows, args.json)
    failed = sum(not row.ok for row in rows)
    counts = {
        label: sum(row.label == label for row in rows) for label in ("normal", "abnormal", "unsure")
    }
    print(
        f"{len(rows)} files: {counts['normal']} normal, {counts['abnormal']} abnormal, "
        f"{counts['unsure']} unsure, {failed} failed → {args.output}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
