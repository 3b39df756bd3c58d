"""Evaluate the committed model end to end on a labelled PhysioNet-layout folder.

    python scripts/evaluate.py                        # the held-out test records of the split
    python scripts/evaluate.py --records all          # every record (includes training data!)
    python scripts/evaluate.py --data-dir DIR --records all   # another labelled collection

Every record goes through the product's own path — decode, front end, quality check, LiteRT
model — exactly as an upload would. Prints sensitivity, specificity, MAcc, AUC, F1 and the
confusion matrix overall and per database, counts the recordings judged too poor ("unsure"),
splits them into "too poor to judge" and "borderline", scores the three-way answer with
"unsure" as half right (the PhysioNet 2016 convention), measures the calibration (expected
calibration error) and writes ``metrics.json``, ``roc.png``, ``pr.png``, ``confusion.png`` and
``reliability.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import _common
import numpy as np
from tqdm import tqdm

from auscult.analyzer import Analyzer
from auscult.calibration import expected_calibration_error
from auscult.datasets import LabelledRecord, read_physionet, split_records
from auscult.errors import AuscultError
from auscult.metrics import (
    binary_metrics,
    metrics_by_group,
    plot_curves,
    plot_reliability,
    unsure_half_right,
)
from auscult.model_card import ModelCard
from config import get_settings


def parse_args() -> argparse.Namespace:
    s = get_settings()
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data-dir", type=Path, default=s.data_dir, help="folder with training-x/REFERENCE.csv"
    )
    p.add_argument("--records", choices=("test", "validation", "all"), default="test",
                   help="the split's held-out test part (default), validation, or all")  # fmt: skip
    p.add_argument(
        "--out", type=Path, default=s.models_dir / "evaluation", help="folder for JSON and plots"
    )
    p.add_argument("--limit", type=int, default=0, help="only the first N selected records")
    return p.parse_args()


def select(records: list[LabelledRecord], which: str, card: ModelCard) -> list[LabelledRecord]:
    """The records of one side of the training split (same fractions and seed as training)."""
    if which == "all":
        return records
    split = card.training.split
    _, val, test = split_records(records, split["fractions"], split["seed"])
    return test if which == "test" else val


def main() -> None:
    args = parse_args()
    _common.setup_logging()
    analyzer = Analyzer()
    records = select(read_physionet(args.data_dir), args.records, analyzer.runner.card)
    if args.limit:
        records = records[: args.limit]
    threshold = analyzer.runner.threshold
    rows, started = [], time.perf_counter()
    for record in tqdm(records, desc="analysing", unit="rec"):
        try:
            r = analyzer.analyze(record.path)
            rows.append((record, r.probability, r.label, r.borderline, ""))
        except AuscultError as exc:
            rows.append((record, float("nan"), "", False, str(exc)))
    seconds = time.perf_counter() - started

    ok = [row for row in rows if not row[4]]
    y = np.array([row[0].label for row in ok])
    p = np.array([row[1] for row in ok])
    judged = np.array([row[2] != "unsure" for row in ok])
    overall = binary_metrics(y, p, threshold)
    judged_only = binary_metrics(y[judged], p[judged], threshold)
    per_db = metrics_by_group(y, p, threshold, np.array([row[0].database for row in ok]))
    borderline = np.array([row[3] for row in ok], dtype=bool)
    unsure = {
        "count": int((~judged).sum()),
        "share": round(float((~judged).mean()), 4) if len(judged) else 0.0,
        "abnormal_among_unsure": int(y[~judged].sum()),
        "borderline": int(borderline.sum()),
        "too_poor": int((~judged & ~borderline).sum()),
    }
    report = {
        "data_dir": str(args.data_dir),
        "records": args.records,
        "n_records": len(rows),
        "failed": [{"record": row[0].name, "error": row[4]} for row in rows if row[4]],
        "threshold": threshold,
        "model_version": analyzer.runner.version,
        "overall": overall.as_dict(),
        "judged_only": judged_only.as_dict(),
        "unsure": unsure,
        "unsure_half_right": unsure_half_right(y, p, threshold, ~judged),
        "ece": round(expected_calibration_error(p, y), 4),
        "per_database": per_db,
        "ms_per_record": round(1000 * seconds / max(1, len(rows)), 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_curves(y, p, threshold, args.out, title=f"({args.records} records)")
    plot_reliability(y, p, args.out / "reliability.png", title=f"({args.records} records)")

    print(
        f"{len(rows)} records ({args.records}), threshold {threshold:.3f}, "
        f"{report['ms_per_record']} ms/record"
    )
    print(f"{'':10} {'n':>5} {'Se':>6} {'Sp':>6} {'MAcc':>6} {'AUC':>6} {'F1':>6}")
    for name, m in [("overall", overall.as_dict()), ("judged", judged_only.as_dict())] + [
        (f"training-{db}", m) for db, m in per_db.items()
    ]:
        print(f"{name:10} {m['n']:>5} {m['sensitivity']:>6.3f} {m['specificity']:>6.3f} "
              f"{m['macc']:>6.3f} {m['auc']:>6.3f} {m['f1']:>6.3f}")  # fmt: skip
    print(f"confusion: TP {overall.tp}  FN {overall.fn}  TN {overall.tn}  FP {overall.fp}")
    print(f"unsure: {unsure['count']} ({unsure['share']:.1%}; {unsure['too_poor']} too poor, "
          f"{unsure['borderline']} borderline), "
          f"{unsure['abnormal_among_unsure']} of them abnormal")  # fmt: skip
    half = report["unsure_half_right"]
    print(f"three-way (unsure = half right): Se {half['sensitivity']:.3f} "
          f"Sp {half['specificity']:.3f} MAcc {half['macc']:.3f}; "
          f"ECE {report['ece']:.3f}")  # fmt: skip
    if report["failed"]:
        print(f"{len(report['failed'])} records could not be analysed (see metrics.json)")
    print(f"wrote {args.out}/metrics.json and plots")


if __name__ == "__main__":
    main()
