"""Retraining benchmark: a new device's recordings, uploaded with labels, taught to the model.

    python benchmarks/bench_retrain.py --json [--device e] [--upload 100] [--epochs 4]

Simulates a clinic with a stethoscope the model has never heard, with the shared data and
the product's own code, in a temporary work folder (the real registry is not touched):

1. **base**: train the model without one database (``--device``, default training-e) —
   the training script's recipe, 12 epochs — and make it the serving version;
2. **upload**: ``--upload`` labelled recordings of that database (half abnormal where it
   has enough; never from the PhysioNet test split) as the clinic's recordings;
3. **retrain**: ``auscult.retrain.run`` — fine-tune (PhysioNet's part without that
   database, plus the uploads), register, compare, promote by the rule;
4. **measure** through the product's path: AUC on the rest of that database before and
   after (``auc_before``, ``auc_after``), the AUC change on the other databases' test
   records (``others_auc_drop``), and the seconds to retrain, to promote and to roll back,
   each until a running analyzer serves the switched version (``promote_s``,
   ``rollback_s``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from _report import publish  # noqa: E402
from tqdm import tqdm  # noqa: E402

from auscult.analyzer import Analyzer  # noqa: E402
from auscult.cache import cycle_features_of, load_cache  # noqa: E402
from auscult.clinic_data import ClinicData  # noqa: E402
from auscult.cycle_features import fit_cycle_model  # noqa: E402
from auscult.datasets import split_records  # noqa: E402
from auscult.metrics import roc_auc  # noqa: E402
from auscult.model_card import cycle_section, load_card  # noqa: E402
from auscult.registry import Registry  # noqa: E402
from auscult.retrain import SPLIT, RetrainPlan, run, version_runner  # noqa: E402
from auscult.runner import sha256_of  # noqa: E402
from auscult.training import (  # noqa: E402
    TrainConfig,
    blended_decision,
    export_model,
    record_scores,
    train_model,
)
from config import get_settings  # noqa: E402


def train_base(cached, table, device: str, s, work: Path) -> dict:
    """The recipe without ``device``: train, blend, calibrate, export; its card."""
    parts = split_records([c.record for c in cached], SPLIT, 42)
    by_name = {c.record.name: c for c in cached}
    train, val, _ = ([by_name[r.name] for r in part if r.database != device] for part in parts)
    cfg = dataclasses.replace(TrainConfig(), epochs=12)
    outcome = train_model(train, val, cfg, s, verbose=1)
    cycle = fit_cycle_model(
        np.array([table[c.record.name] for c in train]),
        np.array([c.record.label for c in train]),
        [c.record.database for c in train],
        c=cfg.cycle_c,
    )

    def predict(w):
        return outcome.model.predict(w[..., None], verbose=0, batch_size=1024).ravel()

    limits, rule = blended_decision(
        record_scores(predict, val, s),
        cycle.logit(np.array([table[c.record.name] for c in val])),
        np.array([c.record.label for c in val]),
        cfg,
    )
    files = export_model(outcome.model, work / "base", s.model_name)
    card = load_card(s).to_dict()
    card.update(
        version=f"bench-base-without-{device}",
        threshold=rule.threshold,
        calibration=rule.calibration.as_dict(),
        borderline=rule.band.as_dict(),
        cycle_model=cycle_section(cycle, cfg.cycle_weight, limits),
        params=dataclasses.asdict(cfg),
        files={p.name: {"bytes": p.stat().st_size, "sha256": sha256_of(p)} for p in files.values()},
    )
    card["training"] = {**card["training"], "date": "2000-01-01T00:00:00+00:00"}
    return {"card": card, "tflite": files["tflite"]}


def auc_of(runner, records, s) -> float:
    analyzer = Analyzer(runner=runner, settings=s)
    probs = [analyzer.analyze(c.record.path).probability for c in tqdm(records, leave=False)]
    return roc_auc(np.array([c.record.label for c in records]), np.array(probs))


def switch_seconds(registry: Registry, analyzer: Analyzer, name: str, wav: bytes) -> float:
    """Seconds from the switch until a running analyzer's next answer comes from ``name``."""
    started = time.perf_counter()
    registry.promote(name, by="bench")
    served = analyzer.analyze(wav).model_version
    seconds = time.perf_counter() - started
    assert served == name, (served, name)
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="e", help="the database that plays the new device")
    p.add_argument("--upload", type=int, default=100)
    p.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", type=Path, help="also write the JSON object to this file")
    a = p.parse_args()
    real = get_settings()
    work = Path(tempfile.mkdtemp(prefix="auscult-bench-retrain-"))
    (work / "cache").symlink_to(real.cache_dir)  # the features of make train
    s = dataclasses.replace(real, work_dir=work)
    cached = load_cache(s.cache_dir / "physionet2016", s)
    by_name = {c.record.name: c for c in cached}
    features = cycle_features_of([c.record for c in cached], s.cache_dir / "physionet2016", s)
    table = dict(zip(by_name, features, strict=True))

    print(f"1/4 training the base model without training-{a.device}")
    base = train_base(cached, table, a.device, s, work)
    registry = Registry(s)
    registry.ensure()
    registry.register(base["tflite"], base["card"])
    registry.promote(base["card"]["version"], by="bench", why="a model that never heard it")

    parts = split_records([c.record for c in cached], SPLIT, 42)
    test_names = {r.name for r in parts[2]}
    device = [c for c in cached if c.record.database == a.device]
    pool = [c for c in device if c.record.name not in test_names]
    rng = np.random.default_rng(0)
    abnormal = [c for c in pool if c.record.label]
    normal = [c for c in pool if not c.record.label]
    n_abn = min(len(abnormal), a.upload // 2)
    chosen = list(rng.choice(abnormal, n_abn, replace=False)) + list(
        rng.choice(normal, a.upload - n_abn, replace=False)
    )
    print(f"2/4 uploading {len(chosen)} labelled recordings of training-{a.device}")
    clinic = ClinicData(s)
    for c in chosen:
        clinic.add_file(
            c.record.path,
            label="abnormal" if c.record.label else "normal",
            who="bench",
            device=f"training-{a.device}",
            patient_id=c.record.name,
        )
    uploaded = {c.record.name for c in chosen}
    rest = [c for c in device if c.record.name not in uploaded]
    others = [by_name[r.name] for r in parts[2] if r.database != a.device]

    print("3/4 retraining")
    started = time.perf_counter()
    result = run(s, RetrainPlan(epochs=a.epochs, exclude_databases=(a.device,)))
    retrain_s = time.perf_counter() - started

    print("4/4 measuring")
    base_version, new_version = registry.get(result["base"]), registry.get(result["candidate"])
    base_runner = version_runner(base_version, s)
    new_runner = version_runner(new_version, s)
    figures = {
        "device": f"training-{a.device}",
        "uploaded": len(chosen),
        "uploaded_abnormal": n_abn,
        "rest_of_device_records": len(rest),
        "auc_before": round(auc_of(base_runner, rest, s), 4),
        "auc_after": round(auc_of(new_runner, rest, s), 4),
        "others_auc_before": round(auc_of(base_runner, others, s), 4),
        "others_auc_after": round(auc_of(new_runner, others, s), 4),
        "retrain_s": round(retrain_s, 1),
        "promoted_by_rule": result["promoted"],
        "decision": result["decision"],
        "fixed_auc_before": round(result["before"]["fixed"]["auc"], 4),
        "fixed_auc_after": round(result["after"]["fixed"]["auc"], 4),
        "clinic_held_out_auc_before": round(result["before"]["clinic"]["auc"], 4),
        "clinic_held_out_auc_after": round(result["after"]["clinic"]["auc"], 4),
    }
    figures["others_auc_drop"] = round(
        figures["others_auc_before"] - figures["others_auc_after"], 4
    )
    wav = Path(rest[0].record.path).read_bytes()
    analyzer = Analyzer(settings=s)  # a running app: it follows the registry
    registry.promote(base_version.name, by="bench")
    analyzer.analyze(wav)
    figures["promote_s"] = round(switch_seconds(registry, analyzer, new_version.name, wav), 3)
    figures["rollback_s"] = round(switch_seconds(registry, analyzer, base_version.name, wav), 3)
    publish(figures, a.out, a.json)


if __name__ == "__main__":
    main()
