"""Retraining from the clinic's own labelled recordings, as a background job with a safe rule.

    python -m auscult.retrain            # what the app's "Retrain" button and the API start

One run: fine-tune the serving model's CNN (a few epochs, from its weights) on the PhysioNet
training records plus the clinic's recordings, refit the heart-cycle model, calibrate and
choose the threshold and band as ``make train`` does (same front end, augmentation and
calibration code), export, and register the result as a candidate version
(``auscult.registry``). Then compare it with the serving version on

- the **fixed set**: the PhysioNet test records of the split — no version ever trains on
  them — and
- the **clinic's held-out recordings**: about 30 % of them, split by patient/exam id where
  known (else by recording), never used for training,

and apply the promotion rule: promote only if the fixed set's AUC drops by at most 0.005,
its sensitivity is not lower, and the clinic's held-out AUC is higher; otherwise keep the
candidate, with the reason, for a person to promote or drop.

Progress, the stage and the outcome are written to ``<work_dir>/models/retrain.json``
(atomically) for the app and the API; the file ``retrain.cancel`` next to it stops the run
between epochs, and a cancelled, failed or killed run registers nothing (the registry only
ever gains whole, checked versions).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import utils
from auscult.analyzer import Analyzer
from auscult.cache import CachedRecord, build_cache, cycle_features_of, load_cache, record_features
from auscult.clinic_data import ClinicData, LabelledRecording
from auscult.cycle_features import fit_cycle_model, recording_cycle_features
from auscult.datasets import LabelledRecord, read_physionet, split_records
from auscult.errors import AuscultError, BusyError, InvalidRequestError
from auscult.inbox import write_atomically
from auscult.metrics import binary_metrics
from auscult.model import custom_objects
from auscult.model_card import cycle_section
from auscult.registry import Registry, Version
from auscult.runner import ModelRunner, sha256_of
from auscult.training import (
    DecisionRule,
    TrainConfig,
    TrainingCancelled,
    TrainOutcome,
    blended_decision,
    export_model,
    record_scores,
    train_model,
)
from config import PROJECT_ROOT, Settings, get_settings

__all__ = [
    "RetrainPlan",
    "Status",
    "cancel_job",
    "clinic_split",
    "promotion_decision",
    "read_status",
    "run",
    "running",
    "start_job",
    "version_runner",
]

log = logging.getLogger(__name__)

SPLIT = (0.70, 0.15, 0.15)  # the training script's split (records, stratified, seed 42)
MIN_CLINIC = 10  # fewer labelled recordings teach nothing a held-out part could show


@dataclass(frozen=True)
class RetrainPlan:
    """How one retraining run fine-tunes."""

    epochs: int = 4
    learning_rate: float = 5e-4  # a tenth of a fresh training's: adapt, do not forget
    clinic_repeat: int = 4  # each clinic recording counts this many times per epoch
    holdout_share: float = 0.3
    seed: int = 42
    limit: int = 0  # a stratified subset of this many PhysioNet records (tests); 0: all
    #: PhysioNet databases left out of training (a simulation of a device never heard:
    #: ``benchmarks/bench_retrain.py``); the fixed set keeps them.
    exclude_databases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Status:
    """What ``retrain.json`` says about the latest run."""

    state: str  # running | done | failed | cancelled
    stage: str
    progress: float  # 0–1
    started_at: str
    pid: int
    message: str = ""
    report: dict[str, Any] | None = None


def status_path(settings: Settings) -> Path:
    return Path(settings.work_dir) / "models" / "retrain.json"


def cancel_path(settings: Settings) -> Path:
    return Path(settings.work_dir) / "models" / "retrain.cancel"


def read_status(settings: Settings) -> Status | None:
    try:
        return Status(**json.loads(status_path(settings).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write_status(settings: Settings, status: Status) -> None:
    path = status_path(settings)
    write_atomically(
        path.parent, path.name, json.dumps(dataclasses.asdict(status), indent=2).encode()
    )


def clinic_split(
    items: Sequence[LabelledRecording], share: float, seed: int = 42
) -> tuple[list[LabelledRecording], list[LabelledRecording]]:
    """(train, held out): whole patients/exams on one side, about ``share`` held out.

    A recording without a patient/exam id is its own group. The side is a hash of the group
    and the seed, so a recording keeps its side as the clinic adds more.
    """
    train, held = [], []
    for item in items:
        group = item.patient_id or f"recording-{item.id}"
        digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
        (held if digest[0] / 256 < share else train).append(item)
    if not held or not train:  # too few groups for a hash split: take every third
        ordered = sorted(items, key=lambda i: i.id)
        held = ordered[::3]
        train = [i for i in ordered if i not in held]
    return train, held


def promotion_decision(before: dict, after: dict) -> tuple[bool, str]:
    """The rule: fixed-set AUC drop ≤ 0.005, sensitivity not lower, clinic AUC higher."""
    drop = before["fixed"]["auc"] - after["fixed"]["auc"]
    if drop > 0.005:
        return False, f"AUC on the fixed set fell by {drop:.3f} (allowed 0.005)"
    if after["fixed"]["sensitivity"] < before["fixed"]["sensitivity"]:
        return False, (
            f"sensitivity on the fixed set fell from {before['fixed']['sensitivity']:.3f} to "
            f"{after['fixed']['sensitivity']:.3f}"
        )
    gain = after["clinic"]["auc"] - before["clinic"]["auc"]
    if not gain > 0:
        return False, f"no better on the clinic's held-out recordings (AUC {gain:+.3f})"
    return True, (
        f"clinic held-out AUC {before['clinic']['auc']:.3f} → {after['clinic']['auc']:.3f}; "
        f"fixed-set AUC {before['fixed']['auc']:.3f} → {after['fixed']['auc']:.3f}"
    )


def _evaluate(runner: ModelRunner, paths: list[Path], labels: np.ndarray, s: Settings) -> dict:
    """AUC, Se, Sp of a version through the product's own path (every record analysed)."""
    analyzer = Analyzer(runner=runner, settings=s)
    probs = np.array([analyzer.analyze(p).probability for p in paths])
    m = binary_metrics(labels, probs, runner.threshold)
    return {
        "auc": m.auc,
        "sensitivity": m.sensitivity,
        "specificity": m.specificity,
        "n": len(labels),
        "threshold": runner.threshold,
        "tp": m.tp, "fn": m.fn, "tn": m.tn, "fp": m.fp,
        "labels": [int(v) for v in labels],
        "probabilities": [round(float(p), 5) for p in probs],
    }  # fmt: skip


def version_runner(version: Version, s: Settings) -> ModelRunner:
    """A runner of one registered version (not necessarily the serving one)."""
    return ModelRunner.of_card(version.tflite_path, version.card)


def _clinic_cached(items: Sequence[LabelledRecording], s: Settings) -> list[CachedRecord]:
    out = []
    for item in items:
        features, duration = record_features(Path(item.audio_path), s)
        record = LabelledRecord(
            f"clinic-{item.id}", "clinic", Path(item.audio_path), int(item.label == "abnormal")
        )
        out.append(CachedRecord(record, features, duration))
    return out


def _clinic_sets(
    s: Settings, plan: RetrainPlan
) -> tuple[list[LabelledRecording], list[LabelledRecording], np.ndarray]:
    """The clinic's recordings split for training and judging, with the held-out labels."""
    items = ClinicData(s).items()
    if len(items) < MIN_CLINIC:
        raise AuscultError(
            f"only {len(items)} labelled clinic recordings; add at least {MIN_CLINIC} "
            "(both labels) before retraining"
        )
    clinic_train, clinic_held = clinic_split(items, plan.holdout_share, plan.seed)
    held_labels = np.array([int(i.label == "abnormal") for i in clinic_held])
    if len(set(held_labels)) < 2:
        raise AuscultError(
            "the clinic's held-out recordings hold only one label, so no AUC can judge a new "
            "version; add recordings of both labels"
        )
    return clinic_train, clinic_held, held_labels


def _physionet_split(
    s: Settings, plan: RetrainPlan
) -> tuple[list[CachedRecord], list[CachedRecord], list[CachedRecord], list[CachedRecord]]:
    """Every cached PhysioNet record, then make train's train / validation / test split."""
    records = read_physionet(s.data_dir)
    if plan.limit and plan.limit < len(records):
        fraction = plan.limit / len(records)
        records, _ = split_records(records, (fraction, 1 - fraction), seed=0)
    wanted = {r.name for r in records}
    try:
        cached = [c for c in load_cache(_cache_dir(s), s) if c.record.name in wanted]
        if len(cached) != len(records):
            raise AuscultError("the feature cache holds other records")
    except AuscultError:
        cached = build_cache(records, s, workers=os.cpu_count() or 1)
    by_name = {c.record.name: c for c in cached}
    parts = split_records([c.record for c in cached], SPLIT, plan.seed)
    train, val, test = ([by_name[r.name] for r in part] for part in parts)
    train = [c for c in train if c.record.database not in plan.exclude_databases]
    val = [c for c in val if c.record.database not in plan.exclude_databases]
    return cached, train, val, test


def _cache_dir(s: Settings) -> Path:
    return s.cache_dir / "physionet2016"


def _fine_tune_config(base: Version, plan: RetrainPlan) -> TrainConfig:
    """The base version's recipe with the plan's epochs, learning rate and seed."""
    cfg = TrainConfig(
        **{**base.card.params, "model": TrainConfig().model, "augment": TrainConfig().augment}
    )
    return dataclasses.replace(
        cfg,
        epochs=plan.epochs,
        learning_rate=plan.learning_rate,
        patience=plan.epochs,
        seed=plan.seed,
    )


def _refit_decision(
    outcome: TrainOutcome,
    cached: list[CachedRecord],
    fit_on: list[CachedRecord],
    val: list[CachedRecord],
    cfg: TrainConfig,
    s: Settings,
    save: bool,
) -> tuple[dict[str, Any], DecisionRule]:
    """The heart-cycle model refitted on ``fit_on`` (the card's ``cycle_model`` entry, with
    the CNN's logit range), then calibration, threshold and band from the validation
    records (as ``make train`` does)."""
    features = cycle_features_of(
        [c.record for c in cached], _cache_dir(s), s, workers=os.cpu_count() or 1, save=save
    )
    table = dict(zip([c.record.name for c in cached], features, strict=True))
    for c in fit_on:
        if c.record.name not in table:  # the clinic's recordings
            table[c.record.name] = recording_cycle_features(utils.load_audio(c.record.path, s), s)
    cycle_model = fit_cycle_model(
        np.array([table[c.record.name] for c in fit_on]),
        np.array([c.record.label for c in fit_on]),
        [c.record.database for c in fit_on],
        c=cfg.cycle_c,
    )
    predict = lambda w: outcome.model.predict(w[..., None], verbose=0, batch_size=1024).ravel()  # noqa: E731
    limits, rule = blended_decision(
        record_scores(predict, val, s),
        cycle_model.logit(np.array([table[c.record.name] for c in val])),
        np.array([c.record.label for c in val]),
        cfg,
    )
    return cycle_section(cycle_model, cfg.cycle_weight, limits), rule


def _register_candidate(
    registry: Registry,
    base: Version,
    outcome: TrainOutcome,
    rule: DecisionRule,
    cycle_model: dict[str, Any],
    cfg: TrainConfig,
    clinic_train: Sequence[LabelledRecording],
    started: float,
) -> Version:
    """Export the fine-tuned model and register it, its card updated, as a candidate."""
    name = datetime.now(UTC).strftime("%Y.%m.%d-%H%M%S") + "-clinic"
    out_dir = Path(tempfile.mkdtemp(prefix="auscult-retrain-"))
    try:
        files = export_model(outcome.model, out_dir, registry.settings.model_name)
        card = base.card.to_dict()
        card.update(
            version=name,
            threshold=rule.threshold,
            calibration={**rule.calibration.as_dict(), "fitted_on": "PhysioNet validation records"},
            borderline={**rule.band.as_dict(), "rule": base.card.borderline.get("rule", "")},
            cycle_model=cycle_model,
            files={
                p.name: {"bytes": p.stat().st_size, "sha256": sha256_of(p)} for p in files.values()
            },
        )
        card["training"] = {
            **card["training"],
            "data": f"{card['training'].get('data', '')}; plus {len(clinic_train)} clinic "
            f"recordings ({sum(i.label == 'abnormal' for i in clinic_train)} abnormal), "
            f"fine-tuned {outcome.epochs_run} epochs from {base.name}",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - started, 1),
            "history": outcome.history,
        }
        card["metrics"] = {**card["metrics"], "lodo": {}}  # the recipe's LODO is the base's
        card["parent"] = base.name
        return registry.register(files["tflite"], card)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def run(
    settings: Settings | None = None,
    plan: RetrainPlan | None = None,
    report: Callable[[float, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    promote: bool = True,
) -> dict[str, Any]:
    """One retraining run; the report (before/after figures, decision, timings)."""
    import keras

    s = settings or get_settings()
    plan = plan or RetrainPlan()
    say = report or (lambda p, stage: log.info("%3.0f%% %s", 100 * p, stage))
    stop = should_stop or (lambda: False)
    started = time.perf_counter()
    registry = Registry(s)
    registry.ensure()
    base = registry.get(registry.active_name() or "")
    clinic_train, clinic_held, held_labels = _clinic_sets(s, plan)

    say(0.02, "reading the PhysioNet features")
    cached, train, val, test = _physionet_split(s, plan)

    say(0.08, "scoring the serving version")
    fixed_paths = [c.record.path for c in test]
    fixed_labels = np.array([c.record.label for c in test])
    held_paths = [Path(i.audio_path) for i in clinic_held]

    def score(runner: ModelRunner) -> dict[str, dict]:
        return {
            "fixed": _evaluate(runner, fixed_paths, fixed_labels, s),
            "clinic": _evaluate(runner, held_paths, held_labels, s),
        }

    before = score(version_runner(base, s))

    say(0.2, "reading the clinic's recordings")
    clinic = _clinic_cached(clinic_train, s)
    keras_path = base.folder / f"{s.model_name}.keras"
    if not keras_path.is_file():
        raise AuscultError(f"version {base.name} has no Keras weights to fine-tune")
    weights = keras.models.load_model(
        keras_path, compile=False, custom_objects=custom_objects()
    ).get_weights()
    cfg = _fine_tune_config(base, plan)

    def on_epoch(epoch: int, val_auc: float) -> bool:
        say(
            0.25 + 0.5 * (epoch + 1) / plan.epochs,
            f"fine-tuning: epoch {epoch + 1} of {plan.epochs}, validation AUC {val_auc:.3f}",
        )
        return not stop()

    say(0.25, f"fine-tuning: epoch 1 of {plan.epochs}")
    outcome = train_model(
        train + clinic * plan.clinic_repeat,
        val,
        cfg,
        s,
        verbose=0,
        initial_weights=weights,
        on_epoch=on_epoch,
    )

    say(0.78, "refitting the heart-cycle model and the calibration")
    cycle_model, rule = _refit_decision(
        outcome, cached, train + clinic, val, cfg, s, save=not plan.limit
    )
    if stop():
        raise TrainingCancelled("stopped before export")

    say(0.85, "exporting and registering the candidate")
    candidate = _register_candidate(
        registry, base, outcome, rule, cycle_model, cfg, clinic_train, started
    )

    say(0.9, "scoring the candidate")
    after = score(version_runner(candidate, s))
    ok, why = promotion_decision(before, after)
    promoted = False
    if ok and promote:
        registry.promote(candidate.name, by="retraining", why=why)
        promoted = True
    return {
        "base": base.name,
        "candidate": candidate.name,
        "promoted": promoted,
        "decision": why if ok else f"kept as a candidate: {why}",
        "before": before,
        "after": after,
        "clinic": {"train": len(clinic_train), "held_out": len(clinic_held)},
        "epochs_run": outcome.epochs_run,
        "best_epoch": outcome.best_epoch,
        "retrain_s": round(time.perf_counter() - started, 1),
    }


def running(settings: Settings) -> Status | None:
    """The status of a run in progress (its process alive), or None."""
    status = read_status(settings)
    if status is None or status.state != "running":
        return None
    try:
        os.kill(status.pid, 0)
    except OSError:
        return None  # killed: the registry holds nothing of it
    return status


def start_job(settings: Settings | None = None) -> int:
    """Start ``python -m auscult.retrain`` in its own process; its pid.

    Refuses (``BusyError``) while another run is in progress.
    """
    s = settings or get_settings()
    if running(s) is not None:
        raise BusyError("a retraining is running already; wait for it or cancel it", 60)
    missing = [name for name in ("tensorflow", "sklearn") if importlib.util.find_spec(name) is None]
    if missing:
        raise InvalidRequestError(
            f"retraining needs the training packages ({', '.join(missing)} missing): install "
            "them with `make setup-dev` (requirements-dev.txt) and start Auscult again"
        )
    counts = ClinicData(s).counts()
    if sum(counts.values()) < MIN_CLINIC or min(counts.values()) == 0:
        raise InvalidRequestError(
            f"retraining needs at least {MIN_CLINIC} labelled clinic recordings of both labels "
            f"(there are {counts['normal']} normal, {counts['abnormal']} abnormal); add them "
            "on the Model page, with POST /v1/training-data, or confirm analysed recordings"
        )
    begun = datetime.now(UTC).isoformat(timespec="seconds")
    env = {
        **os.environ,
        "AUSCULT_WORK_DIR": str(s.work_dir),
        "AUSCULT_DATA_DIR": str(s.data_dir),
        "AUSCULT_RETRAIN_EPOCHS": str(s.retrain_epochs),
        "AUSCULT_RETRAIN_LIMIT": str(s.retrain_limit),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "auscult.retrain"],
        cwd=PROJECT_ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _write_status(s, Status("running", "starting", 0.0, begun, proc.pid))
    return proc.pid


def cancel_job(settings: Settings | None = None) -> bool:
    """Ask the running job to stop after its current epoch; False when none runs."""
    s = settings or get_settings()
    if running(s) is None:
        return False
    cancel_path(s).touch()
    return True


def main() -> int:
    """Run one retraining as a job: status file, cancel file, exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    s = get_settings()
    cancel = cancel_path(s)
    cancel.unlink(missing_ok=True)
    begun = datetime.now(UTC).isoformat(timespec="seconds")

    def say(progress: float, stage: str) -> None:
        _write_status(s, Status("running", stage, round(progress, 3), begun, os.getpid()))

    plan = RetrainPlan(epochs=s.retrain_epochs, limit=s.retrain_limit)
    try:
        result = run(s, plan, report=say, should_stop=cancel.exists)
    except TrainingCancelled:
        _write_status(
            s,
            Status(
                "cancelled",
                "cancelled",
                0.0,
                begun,
                os.getpid(),
                "cancelled; nothing was registered",
            ),
        )
        return 1
    except Exception as exc:  # the job's outcome, for whoever watches it
        log.exception("retraining failed")
        _write_status(s, Status("failed", "failed", 0.0, begun, os.getpid(), str(exc)))
        return 2
    finally:
        cancel.unlink(missing_ok=True)
    _write_status(s, Status("done", "done", 1.0, begun, os.getpid(), result["decision"], result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
