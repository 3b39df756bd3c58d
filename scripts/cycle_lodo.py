"""Leave-one-database-out test of the heart-cycle model, alone and blended with the CNN.

Every PhysioNet 2016 record is segmented (``auscult.cycles``) and described by
``auscult.cycle_features`` — the same code the analyzer and ``make train`` run. For each
held-out database the cycle model is fitted on the other five databases' training records,
and the threshold chosen on their validation records (sensitivity ≥ 0.9), as for the CNN.

    python scripts/cycle_lodo.py
    python scripts/cycle_lodo.py --cnn data/experiments/s4_cnn_lodo_scores.json

With ``--cnn`` (a report of ``gpu_optimized_train.py --lodo-only --report FILE``, which
holds each fold's raw CNN scores of its validation and held-out records) it also scores the
blend ``(1 − w) · logit(CNN) + w · cycle logit`` for several weights ``w``, each followed by
the product's own calibration, threshold and borderline rule (``training.fit_decision``),
the CNN's logit held to the middle of its validation scores as training holds it
(``training.cnn_logit_limits``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import _common  # noqa: F401  (import path)
import numpy as np

from auscult.analyzer import blend_scores
from auscult.cache import cycle_features_of
from auscult.cycle_features import fit_cycle_model
from auscult.datasets import lodo_folds, read_physionet, split_records
from auscult.metrics import best_macc, binary_metrics, unsure_half_right
from auscult.training import TrainConfig, cnn_logit_limits, fit_decision
from config import get_settings

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cnn", type=Path, help="CNN LODO report with per-record scores")
    p.add_argument("--json", type=Path, help="write the fold results here")
    p.add_argument(
        "--record",
        type=float,
        metavar="W",
        help="write the folds of weight W into --out/metadata.json as the recipe's LODO "
        "results (W must be the card's cycle_model weight)",
    )
    p.add_argument("--out", type=Path, default=Path("models"), help="with --record")
    a = p.parse_args()
    settings = get_settings()
    cfg = TrainConfig()
    records = read_physionet(settings.data_dir)
    x = cycle_features_of(records, settings.cache_dir / "physionet2016", settings, workers=2)
    y = np.array([r.label for r in records])
    index = {r.name: i for i, r in enumerate(records)}
    report = json.loads(a.cnn.read_text()) if a.cnn else {}
    cnn = report.get("folds", {})
    seed = report.get("params", {}).get("seed", cfg.seed)  # the CNN folds' own split
    weights = WEIGHTS if cnn else (1.0,)
    results: dict[float, dict[str, dict]] = {w: {} for w in weights}
    # diagnosis only, kept apart from the results that --record writes into the model card
    ceilings: dict[float, dict[str, float]] = {w: {} for w in weights}
    for db, train_side, test_side in lodo_folds(records):
        tr, va = split_records(train_side, (0.85, 0.15), seed)  # the CNN fold's split
        rows = lambda rs: np.array([index[r.name] for r in rs])  # noqa: E731
        i_tr, i_va, i_te = rows(tr), rows(va), rows(test_side)
        model = fit_cycle_model(x[i_tr], y[i_tr], [r.database for r in tr])
        cyc_va, cyc_te = model.logit(x[i_va]), model.logit(x[i_te])
        fold = cnn.get(db)
        for w in weights:
            if fold is None and w < 1.0:
                continue
            if fold is None:
                raw_va, raw_te = 1 / (1 + np.exp(-cyc_va)), 1 / (1 + np.exp(-cyc_te))
            else:
                cnn_va = np.array([fold["validation_scores"][r.name] for r in va])
                cnn_te = np.array([fold["test_scores"][r.name] for r in test_side])
                limits = cnn_logit_limits(cnn_va, cfg) if w > 0 else None
                raw_va = blend_scores(cnn_va, cyc_va, w, limits)
                raw_te = blend_scores(cnn_te, cyc_te, w, limits)
            rule = fit_decision(raw_va, y[i_va], cfg)
            prob = rule.calibration(raw_te)
            m = binary_metrics(y[i_te], prob, rule.threshold)
            results[w][db] = {
                **m.as_dict(),
                "with_borderline_unsure": unsure_half_right(
                    y[i_te], prob, rule.threshold, rule.band.contains_all(prob)
                ),
            }
            ceilings[w][db] = round(best_macc(y[i_te], prob), 4)
    print(
        "weight of the cycle model | AUC a b c d e f | mean AUC | lowest | mean MAcc "
        "| MAcc ceiling (each held-out database's own best threshold; diagnosis only)"
    )
    summary = {}
    for w, folds in results.items():
        dbs = sorted(folds)
        aucs = [folds[d]["auc"] for d in dbs]
        maccs = [folds[d]["macc"] for d in dbs]
        ceiling = float(np.mean([ceilings[w][d] for d in dbs]))
        summary[str(w)] = {
            "folds": folds,
            "mean_auc": round(float(np.mean(aucs)), 4),
            "min_auc": round(float(np.min(aucs)), 4),
            "mean_macc": round(float(np.mean(maccs)), 4),
            "best_macc": ceilings[w],
            "mean_best_macc": round(ceiling, 4),
        }
        print(
            f"w={w:.2f} | "
            + " ".join(f"{v:.3f}" for v in aucs)
            + f" | {np.mean(aucs):.3f} | {np.min(aucs):.3f} | {np.mean(maccs):.3f}"
            + f" | {ceiling:.3f}"
        )
    if a.json:
        a.json.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {a.json}")
    if a.record is not None:
        record(a.out / "metadata.json", summary[str(a.record)], a.record, a.cnn)


def record(path: Path, section: dict, weight: float, cnn: Path) -> None:
    """The recipe's LODO results in the model card: the CNN folds of ``cnn`` (the same CNN
    recipe) blended with a cycle model fitted per fold, exactly as training does."""
    card = json.loads(path.read_text())
    if (card.get("cycle_model") or {}).get("weight") != weight:
        raise SystemExit(f"{path} does not blend with weight {weight}; retrain or pick it")
    card["metrics"]["lodo"] = {
        "folds": section["folds"],
        "mean_macc": section["mean_macc"],
        "mean_auc": section["mean_auc"],
        "params": card["params"],
        "how": f"CNN fold scores from {cnn.name} (12 epochs per fold), heart-cycle model "
        f"fitted on each fold's training records, blended with weight {weight} (the CNN's "
        "logit held to the middle of its validation scores); calibration, threshold and band "
        "from the fold's validation records",
    }
    path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"recorded the LODO folds of weight {weight} in {path}")


if __name__ == "__main__":
    main()
