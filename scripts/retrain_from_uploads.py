"""Add the clinic's labelled recordings and retrain on them, from the command line.

    python scripts/retrain_from_uploads.py labels.csv --who "Dr Ng" --evidence echo
    python scripts/retrain_from_uploads.py labels.csv --who "Dr Ng" --no-retrain
    python scripts/retrain_from_uploads.py --retrain-only

``labels.csv`` has a header and the columns ``path,label`` (label ``normal``/``abnormal``,
or PhysioNet's ``-1``/``1``), optionally ``site``, ``device``, ``patient_id`` and ``note``;
paths are relative to the CSV's folder. Every file is checked as an upload would be (a file
that cannot be used is reported and skipped), kept with who labelled it, then the serving
model is fine-tuned on PhysioNet plus every labelled recording the clinic has, compared with
the serving version, and promoted only by the rule (see ``auscult/retrain.py``).
Prints the comparison; ``--json`` prints the whole report as one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import _common
from tqdm import tqdm

from auscult.clinic_data import ClinicData
from auscult.errors import AuscultError
from auscult.retrain import RetrainPlan, run
from config import get_settings

_LABELS = {"normal": "normal", "abnormal": "abnormal", "-1": "normal", "1": "abnormal"}


def add_labelled(csv_path: Path, who: str, evidence: str | None) -> tuple[int, list[str]]:
    """Keep every usable row of the CSV; (how many kept, one message per refused row)."""
    clinic = ClinicData(get_settings())
    kept, refused = 0, []
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in tqdm(rows, desc="labelled recordings", unit="file"):
        path = (csv_path.parent / row.get("path", "")).resolve()
        label = _LABELS.get((row.get("label") or "").strip().lower())
        try:
            if label is None:
                raise AuscultError(f"label {row.get('label')!r} is not normal or abnormal")
            clinic.add_file(
                path,
                label=label,
                who=who,
                evidence=evidence,
                source="script",
                site=row.get("site") or None,
                device=row.get("device") or None,
                patient_id=row.get("patient_id") or None,
                note=row.get("note") or None,
            )
            kept += 1
        except (AuscultError, OSError) as exc:
            refused.append(f"{row.get('path')}: {exc}")
    return kept, refused


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("labels", nargs="?", type=Path, help="CSV of path,label[,site,device,…]")
    p.add_argument("--who", help="who gave the labels (kept with every recording)")
    p.add_argument("--evidence", help="what the labels rest on, e.g. echocardiogram")
    p.add_argument("--no-retrain", action="store_true", help="only add the recordings")
    p.add_argument("--retrain-only", action="store_true", help="retrain on what is kept")
    p.add_argument("--epochs", type=int, help="fine-tuning epochs (default: the setting)")
    p.add_argument("--no-promote", action="store_true", help="keep the result a candidate")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    a = p.parse_args()
    _common.setup_logging()
    s = get_settings()
    if not a.retrain_only:
        if a.labels is None or not a.who:
            p.error("give the labels CSV and --who (or --retrain-only)")
        kept, refused = add_labelled(a.labels, a.who, a.evidence)
        print(f"kept {kept} labelled recording(s); refused {len(refused)}")
        for line in refused:
            print(f"  refused {line}", file=sys.stderr)
    if a.no_retrain:
        return 0
    plan = RetrainPlan(epochs=a.epochs or s.retrain_epochs, limit=s.retrain_limit)
    bar = tqdm(total=100, desc="retraining", unit="%")

    def report(progress: float, stage: str) -> None:
        bar.set_postfix_str(stage[:60])
        bar.update(max(0, round(100 * progress) - bar.n))

    try:
        result = run(s, plan, report=report, promote=not a.no_promote)
    except AuscultError as exc:
        bar.close()
        print(f"retraining refused: {exc}", file=sys.stderr)
        return 1
    bar.update(100 - bar.n)
    bar.close()
    if a.json:
        print(json.dumps(result))
        return 0
    for side in ("before", "after"):
        name = "serving " if side == "before" else "retrained"
        fixed, clinic = result[side]["fixed"], result[side]["clinic"]
        print(
            f"{name}: fixed set AUC {fixed['auc']:.3f} Se {fixed['sensitivity']:.3f} · "
            f"clinic held-out AUC {clinic['auc']:.3f}"
        )
    print(f"{result['candidate']}: {result['decision']} ({result['retrain_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
