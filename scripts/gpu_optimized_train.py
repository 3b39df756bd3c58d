"""Train the Auscult heart-sound CNN on PhysioNet 2016 and export it to models/.

    python scripts/gpu_optimized_train.py                 # full run, writes models/
    python scripts/gpu_optimized_train.py --lodo          # also leave-one-database-out folds
    python scripts/gpu_optimized_train.py --lodo-only     # only the LODO folds, into metadata
    python scripts/gpu_optimized_train.py --limit 60 --epochs 1 --out /tmp/m   # smoke run
    python scripts/gpu_optimized_train.py --lodo-only --folds a,b,e \
        --set augment.agc_prob=0 --report data/experiments/no_agc.json   # one experiment

Records are split by record (never windows of one recording on both sides), stratified by
database and label, with a fixed seed: 70 % train, 15 % validation (early stopping on record
AUC, decision threshold), 15 % test (reported, touched once). Uses the GPU with mixed
precision when there is one, the CPU otherwise. Writes ``<name>.keras``, ``<name>.tflite``
and ``metadata.json`` (preprocessing, threshold, metrics, training, files, params) into
``--out``, TensorBoard logs into ``data/runs/`` (ignored by git).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import _common
import numpy as np

from auscult.analyzer import blend_scores
from auscult.cache import CachedRecord, build_cache, cycle_features_of, load_cache, write_cache
from auscult.calibration import expected_calibration_error, reliability_bins
from auscult.cycle_features import CycleModel, fit_cycle_model
from auscult.datasets import lodo_folds, read_physionet, split_records
from auscult.metrics import binary_metrics, metrics_by_group, plot_reliability, unsure_half_right
from auscult.model import ModelParams
from auscult.model_card import cycle_section
from auscult.runner import sha256_of
from auscult.training import (
    DecisionRule,
    TrainConfig,
    cnn_logit_limits,
    configure_devices,
    export_model,
    fit_decision,
    record_scores,
    train_model,
)
from config import Settings, get_settings

SPLIT = (0.70, 0.15, 0.15)
CycleTable = dict[str, np.ndarray]  # record name → heart-cycle features


@dataclasses.dataclass(frozen=True)
class RunArgs:
    """Everything that defines a run besides the data: filled from the command line."""

    out: Path
    data_dir: Path
    cache: Path
    limit: int
    lodo: bool
    lodo_only: bool
    lodo_epochs: int
    folds: tuple[str, ...]  # LODO folds to run (empty: all)
    report: Path | None  # write LODO results here instead of into metadata.json
    train: TrainConfig


def with_overrides(cfg: TrainConfig, assignments: list[str]) -> TrainConfig:
    """Apply ``name=value`` or ``augment.name=value`` / ``model.name=value`` to a config."""
    for assignment in assignments:
        key, _, raw = assignment.partition("=")
        part, _, name = key.rpartition(".")
        target = getattr(cfg, part) if part else cfg
        if not raw or name not in {f.name for f in dataclasses.fields(target)}:
            raise SystemExit(
                f"--set {assignment!r}: no such setting (try augment.noise_prob_normal)"
            )
        current = getattr(target, name)
        value = (
            tuple(type(current[0])(v) for v in raw.split(","))
            if isinstance(current, tuple)
            else raw
            if isinstance(current, str)
            else type(current)(raw)
        )
        changed = dataclasses.replace(target, **{name: value})
        cfg = dataclasses.replace(cfg, **{part: changed}) if part else changed
    return cfg


def parse_args() -> RunArgs:
    s = get_settings()
    defaults = TrainConfig()
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--out", type=Path, default=s.models_dir, help="folder for model files + metadata"
    )
    p.add_argument("--data-dir", type=Path, default=s.data_dir)
    p.add_argument("--cache", type=Path, default=s.cache_dir / "physionet2016")
    p.add_argument("--limit", type=int, default=0, help="use only N records (smoke runs)")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--patience", type=int, default=defaults.patience)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument(
        "--crops", type=int, default=defaults.crops_per_record, help="windows per record per epoch"
    )
    p.add_argument("--lr", type=float, default=defaults.learning_rate)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--filters", type=str, default=",".join(map(str, defaults.model.filters)))
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--lodo", action="store_true", help="also run leave-one-database-out folds")
    p.add_argument(
        "--lodo-only",
        action="store_true",
        help="run only the LODO folds and record them in the existing --out/metadata.json",
    )
    p.add_argument(
        "--lodo-epochs", type=int, default=12, help="epochs per LODO fold (six more trainings)"
    )
    p.add_argument("--folds", default="", help="LODO folds to run, e.g. a,b,e (default: all)")
    p.add_argument(
        "--report",
        type=Path,
        help="with --lodo-only: write the folds to this JSON file instead; with --lodo: "
        "also write them there, with the per-record scores later experiments blend",
    )
    p.add_argument("--database-weight", choices=("size", "sqrt"), default=defaults.database_weight)
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override any training, augment.* or model.* setting (repeatable)",
    )  # fmt: skip
    a = p.parse_args()
    train = TrainConfig(
        seed=a.seed,
        epochs=a.epochs,
        patience=a.patience,
        batch_size=a.batch_size,
        crops_per_record=a.crops,
        learning_rate=a.lr,
        model=ModelParams(filters=tuple(int(f) for f in a.filters.split(","))),
        augment_enabled=not a.no_augment,
        database_weight=a.database_weight,
    )
    train = with_overrides(train, a.set)
    folds = tuple(f for f in a.folds.split(",") if f)
    return RunArgs(
        a.out, a.data_dir, a.cache, a.limit, a.lodo, a.lodo_only, a.lodo_epochs, folds,
        a.report, train,
    )  # fmt: skip


def load_features(args: RunArgs, settings: Settings) -> list[CachedRecord]:
    """Cached features of the records to use, computed (in parallel) when the cache lacks them."""
    records = read_physionet(args.data_dir)
    if args.limit and args.limit < len(records):  # a stratified subset for smoke runs
        fraction = args.limit / len(records)
        records, _ = split_records(records, (fraction, 1 - fraction), seed=0)
    wanted = {r.name for r in records}
    try:
        cached = [c for c in load_cache(args.cache, settings) if c.record.name in wanted]
        if len(cached) != len(wanted):
            raise ValueError(f"cache holds {len(cached)} of the {len(wanted)} records")
    except Exception as exc:
        print(f"building feature cache ({exc})")
        cached = build_cache(records, settings, workers=os.cpu_count() or 1)
        if not args.limit:  # a subset never replaces the full cache
            write_cache(args.cache, cached, settings)
    return cached


def split(cached: list[CachedRecord], seed: int) -> tuple[list[CachedRecord], ...]:
    by_name = {c.record.name: c for c in cached}
    parts = split_records([c.record for c in cached], SPLIT, seed)
    return tuple([by_name[r.name] for r in part] for part in parts)


def keras_predictor(model):
    return lambda w: model.predict(w[..., None], verbose=0, batch_size=1024).ravel()


def labels(records: list[CachedRecord]) -> np.ndarray:
    return np.array([c.record.label for c in records])


def cycle_table(cached: list[CachedRecord], args: RunArgs, settings: Settings) -> CycleTable:
    """Heart-cycle features of every record by name (cached beside the log-mel)."""
    records = [c.record for c in cached]
    x = cycle_features_of(
        records, args.cache, settings, workers=os.cpu_count() or 1, save=not args.limit
    )
    return dict(zip((r.name for r in records), x, strict=True))


def fit_cycles(train: list[CachedRecord], table: CycleTable, cfg: TrainConfig) -> CycleModel | None:
    """The heart-cycle model on the training records (None when the recipe leaves it out)."""
    if cfg.cycle_weight <= 0:
        return None
    x = np.array([table[c.record.name] for c in train])
    return fit_cycle_model(x, labels(train), [c.record.database for c in train], c=cfg.cycle_c)


def blended(
    raw: np.ndarray, records: list[CachedRecord], model: CycleModel | None, table: CycleTable,
    cfg: TrainConfig, cnn_limits: tuple[float, float] | None,
) -> np.ndarray:  # fmt: skip
    """The CNN's record scores blended with the heart-cycle model, as the analyzer does."""
    if model is None:
        return raw
    cycle_logit = model.logit(np.array([table[c.record.name] for c in records]))
    return blend_scores(raw, cycle_logit, cfg.cycle_weight, cnn_limits)


def _by_name(records: list[CachedRecord], scores: np.ndarray) -> dict[str, float]:
    return {c.record.name: round(float(v), 5) for c, v in zip(records, scores, strict=True)}


def run_lodo(
    cached: list[CachedRecord], cfg: TrainConfig, settings: Settings, table: CycleTable,
    only: tuple[str, ...] = (),
) -> dict[str, dict]:  # fmt: skip
    """Train on five databases, test on the sixth; threshold from the training side's validation."""
    results: dict[str, dict] = {}
    for db, train_side, test_side in lodo_folds([c.record for c in cached]):
        if only and db not in only:
            continue
        by_name = {c.record.name: c for c in cached}
        tr, va = split_records(train_side, (0.85, 0.15), cfg.seed)
        tr, va = [by_name[r.name] for r in tr], [by_name[r.name] for r in va]
        te = [by_name[r.name] for r in test_side]
        print(f"LODO fold: hold out training-{db} ({len(te)} records), train on {len(tr)}")
        outcome = train_model(tr, va, cfg, settings)
        predict = keras_predictor(outcome.model)
        va_cnn = record_scores(predict, va, settings)
        te_cnn = record_scores(predict, te, settings)
        cycles = fit_cycles(tr, table, cfg)
        limits = cnn_logit_limits(va_cnn, cfg)
        va_raw = blended(va_cnn, va, cycles, table, cfg, limits)
        te_raw = blended(te_cnn, te, cycles, table, cfg, limits)
        rule = fit_decision(va_raw, labels(va), cfg)
        p = rule.calibration(te_raw)
        m = binary_metrics(labels(te), p, rule.threshold)
        results[db] = {
            **m.as_dict(),
            "ece": round(expected_calibration_error(p, labels(te)), 4),
            "with_borderline_unsure": unsure_half_right(
                labels(te), p, rule.threshold, rule.band.contains_all(p)
            ),
            # the CNN's raw record scores, so later experiments can blend without retraining
            "validation_scores": _by_name(va, va_cnn),
            "test_scores": _by_name(te, te_cnn),
        }
        print(
            f"  training-{db}: Se {m.sensitivity:.3f} Sp {m.specificity:.3f} "
            f"MAcc {m.macc:.3f} AUC {m.auc:.3f}"
        )
    return results


def calibration_section(
    rule: DecisionRule,
    val_labels: np.ndarray,
    val_raw: np.ndarray,
    test_labels: np.ndarray,
    test_raw: np.ndarray,
) -> dict:
    """The calibration map and how well it holds: ECE before/after, reliability bins."""
    val_p, test_p = rule.calibration(val_raw), rule.calibration(test_raw)
    return {
        **rule.calibration.as_dict(),
        "fitted_on": "validation records",
        "ece": {
            "validation_raw": round(expected_calibration_error(val_raw, val_labels), 4),
            "validation": round(expected_calibration_error(val_p, val_labels), 4),
            "test_raw": round(expected_calibration_error(test_raw, test_labels), 4),
            "test": round(expected_calibration_error(test_p, test_labels), 4),
        },
        "reliability_test": reliability_bins(test_p, test_labels),
    }


def lodo_section(cached: list[CachedRecord], args: RunArgs, settings: Settings) -> dict:
    """LODO results with the recipe that produced them (they judge the recipe, not one model)."""
    cfg = dataclasses.replace(args.train, epochs=args.lodo_epochs)
    folds = run_lodo(cached, cfg, settings, cycle_table(cached, args, settings), args.folds)
    maccs = [m["macc"] for m in folds.values()]
    aucs = [m["auc"] for m in folds.values() if m["auc"] == m["auc"]]
    return {
        "folds": folds,
        "mean_macc": round(float(np.mean(maccs)), 4),
        "mean_auc": round(float(np.mean(aucs)), 4),
        "params": dataclasses.asdict(cfg),
    }


def without_scores(section: dict) -> dict:
    """A LODO section without the per-record scores (they belong in experiment reports only)."""
    drop = ("validation_scores", "test_scores")
    folds = {
        db: {k: v for k, v in m.items() if k not in drop} for db, m in section["folds"].items()
    }
    return {**section, "folds": folds}


def write_report(section: dict, path: Path) -> None:
    """LODO results with the per-record scores, for experiments (``scripts/cycle_lodo.py``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(section, indent=2, default=str) + "\n")
    print(f"wrote {path}")


def lodo_only(args: RunArgs, settings: Settings) -> None:
    if args.report is not None:  # an experiment: leave the committed model's record alone
        write_report(lodo_section(load_features(args, settings), args, settings), args.report)
        return
    path = args.out / "metadata.json"
    metadata = json.loads(path.read_text())
    section = lodo_section(load_features(args, settings), args, settings)
    metadata["metrics"]["lodo"] = without_scores(section)
    path.write_text(json.dumps(metadata, indent=2, default=str) + "\n")
    print(f"recorded leave-one-database-out results in {path}")


def main() -> None:
    args = parse_args()
    _common.setup_logging()
    settings = get_settings()
    device = configure_devices()
    print(f"training on {device}")
    if args.lodo_only:
        lodo_only(args, settings)
        return
    started = time.perf_counter()
    cached = load_features(args, settings)
    train, val, test = split(cached, args.train.seed)
    print(f"records: train {len(train)}, validation {len(val)}, test {len(test)}")

    run_dir = settings.work_dir / "runs" / datetime.now().strftime("%Y%m%d-%H%M%S")
    outcome = train_model(train, val, args.train, settings, log_dir=run_dir)
    predict = keras_predictor(outcome.model)
    table = cycle_table(cached, args, settings)
    cycles = fit_cycles(train, table, args.train)
    val_cnn = record_scores(predict, val, settings)
    limits = cnn_logit_limits(val_cnn, args.train)
    val_raw = blended(val_cnn, val, cycles, table, args.train, limits)
    rule = fit_decision(val_raw, labels(val), args.train)
    threshold = rule.threshold
    val_scores = rule.calibration(val_raw)
    val_m = binary_metrics(labels(val), val_scores, threshold)
    test_cnn = record_scores(predict, test, settings)
    test_raw = blended(test_cnn, test, cycles, table, args.train, limits)
    test_scores = rule.calibration(test_raw)
    test_m = binary_metrics(labels(test), test_scores, threshold)
    databases = np.array([c.record.database for c in test])
    per_db = metrics_by_group(labels(test), test_scores, threshold, databases)
    calibration = calibration_section(rule, labels(val), val_raw, labels(test), test_raw)
    plot_reliability(
        labels(test), test_scores, args.out / "evaluation" / "reliability.png", "(test records)"
    )
    print(f"validation: {val_m.as_dict()}")
    print(f"test:       {test_m.as_dict()}")
    print(
        f"calibration: ECE validation {calibration['ece']['validation']:.3f} "
        f"(raw {calibration['ece']['validation_raw']:.3f}), test "
        f"{calibration['ece']['test']:.3f} (raw {calibration['ece']['test_raw']:.3f}); "
        f"borderline band {rule.band.low:.3f}–{rule.band.high:.3f}"
    )
    print(
        "test AUC within each database: "
        + ", ".join(f"{db} {m['auc']:.3f}" for db, m in per_db.items())
    )
    train_seconds = time.perf_counter() - started

    files = export_model(outcome.model, args.out, settings.model_name)
    lodo: dict = {}
    if not args.lodo and (args.out / "metadata.json").exists():
        # LODO judges the recipe: keep earlier folds only if they came from this recipe
        previous = json.loads((args.out / "metadata.json").read_text())
        earlier = previous.get("metrics", {}).get("lodo", {})
        same = {**earlier.get("params", {}), "epochs": None} == {
            **json.loads(json.dumps(dataclasses.asdict(args.train), default=str)),
            "epochs": None,
        }
        lodo = earlier if same else {}
    metadata = {
        "version": datetime.now(UTC).strftime("%Y.%m.%d-%H%M"),
        "task": "record-level normal vs abnormal heart sound (PhysioNet/CinC 2016 labels)",
        "preprocessing": settings.preprocessing(),
        "threshold": threshold,
        "threshold_rule": "best MAcc on validation records with sensitivity >= "
        f"{args.train.min_sensitivity}, on the calibrated probability",
        "calibration": calibration,
        "borderline": {
            **rule.band.as_dict(),
            "rule": f"symmetric in logit around the threshold, holding the "
            f"{args.train.borderline_share:.0%} of validation records nearest to it",
        },
        "aggregation": "mean of window scores, then calibration"
        if cycles is None
        else f"mean of window scores, its logit held to {limits} (the "
        f"{args.train.cnn_limit_share:.0%}–{1 - args.train.cnn_limit_share:.0%} percentiles of "
        f"the validation records') and blended with the heart-cycle model's "
        f"(weight {args.train.cycle_weight}), then calibration",
        "metrics": {
            "validation": val_m.as_dict(),
            "test": test_m.as_dict(),
            "test_with_borderline_unsure": unsure_half_right(
                labels(test), test_scores, threshold, rule.band.contains_all(test_scores)
            ),
            "test_per_database": per_db,
            "lodo": lodo,
        },
        "training": {
            "data": "PhysioNet/CinC 2016 training set (developers' copy, 2,753 records)",
            "records": {"train": len(train), "validation": len(val), "test": len(test)},
            "split": {
                "fractions": SPLIT,
                "seed": args.train.seed,
                "by": "record, stratified by database x label",
            },
            "epochs_run": outcome.epochs_run,
            "best_epoch": outcome.best_epoch,
            "seconds": round(train_seconds, 1),
            "device": device,
            "machine": f"{platform.machine()} {os.cpu_count()} cores",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "history": outcome.history,
        },
        "params": dataclasses.asdict(args.train),
        "files": {
            p.name: {"bytes": p.stat().st_size, "sha256": sha256_of(p)} for p in files.values()
        },
    }
    if cycles is not None:
        metadata["cycle_model"] = cycle_section(cycles, args.train.cycle_weight, limits)
    path = args.out / "metadata.json"
    path.write_text(json.dumps(metadata, indent=2, default=str) + "\n")
    print(
        f"wrote {', '.join(str(p) for p in files.values())} and metadata.json "
        f"in {train_seconds:.0f} s"
    )
    if args.lodo:  # after the model is saved: six more trainings must not put it at risk
        lodo = lodo_section(cached, args, settings)
        metadata["metrics"]["lodo"] = without_scores(lodo)
        path.write_text(json.dumps(metadata, indent=2, default=str) + "\n")
        print(f"recorded leave-one-database-out results in {path}")
        if args.report is not None:
            write_report(lodo, args.report)


if __name__ == "__main__":
    main()
