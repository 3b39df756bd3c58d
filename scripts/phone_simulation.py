"""How the committed model and quality gate hold up on phone-like recordings.

    python scripts/phone_simulation.py                     # test records, all SNRs
    python scripts/phone_simulation.py --limit 60 --noise-only 10   # a quick look

Builds a phone-simulation test set from the split's held-out test records (see
``auscult/phone_channel.py``: 48 kHz, microphone low cut, real phone noise at a chosen SNR,
automatic gain control, limiter, Opus/AAC round trip; seeded, one channel draw per record
shared by every SNR so the conditions are paired) and analyses every file through the
product's own path, as a phone upload. Reports AUC, Se, Sp and MAcc per condition, the
share judged "unsure", and for noise-only phone recordings (no heart in them) the share the
quality gate refuses. Writes ``phone_simulation.json`` into ``--out``.

The phone noise comes from the quiet stretches of ``../shared/data/phone_unlabelled``
(unlabelled: used only as noise, never to choose a threshold); without that folder,
synthetic room noise stands in and the report says so.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import _common
import numpy as np
from tqdm import tqdm

import utils
from auscult.analyzer import Analyzer
from auscult.datasets import read_physionet, split_records
from auscult.metrics import binary_metrics, unsure_half_right
from auscult.phone_channel import (
    NOISE_KINDS,
    apply_channel,
    noise_only,
    phone_noise_bank,
    random_channel,
)
from config import get_settings


def parse_args() -> argparse.Namespace:
    s = get_settings()
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-dir", type=Path, default=s.data_dir)
    p.add_argument("--records", choices=("test", "validation"), default="test")
    p.add_argument("--snr", default="20,10,0", help="SNRs in dB of the noisy conditions")
    p.add_argument(
        "--noise-dir", type=Path, default=s.project_root.parent / "shared/data/phone_unlabelled"
    )
    p.add_argument("--noise-only", type=int, default=40, help="noise recordings per kind")
    p.add_argument("--max-seconds", type=float, default=20.0, help="phone recordings' length")
    p.add_argument("--limit", type=int, default=0, help="only the first N records")
    p.add_argument("--seed", type=int, default=2016)
    p.add_argument("--out", type=Path, default=s.models_dir / "evaluation")
    return p.parse_args()


def condition_report(
    labels: np.ndarray, probs: np.ndarray, verdicts: list[str], threshold: float
) -> dict:
    """Ranking, decisions and refusals of one condition."""
    unsure = np.array([v == "unsure" for v in verdicts])
    judged = ~unsure
    plain = binary_metrics(labels, probs, threshold)
    return {
        "auc": round(plain.auc, 4),
        "plain": {k: plain.as_dict()[k] for k in ("sensitivity", "specificity", "macc")},
        "judged_only": binary_metrics(labels[judged], probs[judged], threshold).as_dict()
        if judged.any()
        else {},
        "unsure_half_right": unsure_half_right(labels, probs, threshold, unsure),
    }


def main() -> None:
    args = parse_args()
    _common.setup_logging()
    analyzer = Analyzer()
    split = analyzer.runner.card.training.split
    _, val, test = split_records(read_physionet(args.data_dir), split["fractions"], split["seed"])
    records = test if args.records == "test" else val
    if args.limit:
        records = records[: args.limit]
    bank = phone_noise_bank(args.noise_dir) if args.noise_dir.exists() else np.zeros(0)
    snrs = [float(v) for v in args.snr.split(",") if v]
    conditions = ["stethoscope", "phone, no noise"] + [f"phone, {v:g} dB" for v in snrs]
    results: dict[str, dict[str, list]] = {c: {"p": [], "label": []} for c in conditions}
    labels = np.array([r.label for r in records])
    started = time.perf_counter()
    for i, record in enumerate(tqdm(records, desc="records", unit="rec")):
        rec = utils.load_audio(record.path)
        keep = int(args.max_seconds * rec.sample_rate)
        samples = rec.samples[:keep]
        clean = utils.Recording(samples, rec.sample_rate, 1)
        outcomes = [analyzer.analyze_recording(clean).result]
        for snr in [None, *snrs]:
            rng = np.random.default_rng([args.seed, i])  # the same phone for every SNR
            channel = random_channel(rng, snr)
            data = apply_channel(samples, rec.sample_rate, channel, rng, bank)
            outcomes.append(analyzer.analyze(data))
        for condition, r in zip(conditions, outcomes, strict=True):
            results[condition]["p"].append(r.probability)
            results[condition]["label"].append(r.label)
    per_condition = {
        c: condition_report(labels, np.array(v["p"]), v["label"], analyzer.runner.threshold)
        for c, v in results.items()
    }

    gate: dict[str, dict] = {}  # stays empty with --noise-only 0: no share of nothing
    rng = np.random.default_rng(args.seed)
    for kind in tqdm(NOISE_KINDS if args.noise_only > 0 else (), desc="noise-only", unit="kind"):
        verdicts = [
            analyzer.analyze(noise_only(kind, float(rng.uniform(10, 30)), rng, bank)).label
            for _ in range(args.noise_only)
        ]
        gate[kind] = {
            "n": len(verdicts),
            "unsure": round(verdicts.count("unsure") / len(verdicts), 3),
            "abnormal": round(verdicts.count("abnormal") / len(verdicts), 3),
        }
    report = {
        "records": f"{args.records} split, {len(records)} records ({int(labels.sum())} abnormal)",
        "model_version": analyzer.runner.version,
        "threshold": analyzer.runner.threshold,
        "phone_noise": "real (phone_unlabelled quiet stretches)"
        if len(bank)
        else "synthetic room noise (no phone recordings found)",
        "seed": args.seed,
        "conditions": per_condition,
        "auc_drop_at_10_db": round(
            per_condition["stethoscope"]["auc"]
            - per_condition.get("phone, 10 dB", {}).get("auc", float("nan")),
            4,
        ),
        "noise_only": gate,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if gate:
        report["noise_only_unsure_share"] = round(
            sum(g["unsure"] * g["n"] for g in gate.values()) / sum(g["n"] for g in gate.values()),
            3,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "phone_simulation.json").write_text(json.dumps(report, indent=2) + "\n")

    print(f"{report['records']}; noise: {report['phone_noise']}")
    print(f"{'condition':18} {'AUC':>6} {'Se':>6} {'Sp':>6} {'MAcc':>6} {'unsure':>7} {'MAcc½':>6}")
    for c, m in per_condition.items():
        h = m["unsure_half_right"]
        print(f"{c:18} {m['auc']:>6.3f} {m['plain']['sensitivity']:>6.3f} "
              f"{m['plain']['specificity']:>6.3f} {m['plain']['macc']:>6.3f} "
              f"{h['unsure_share']:>7.1%} {h['macc']:>6.3f}")  # fmt: skip
    print(f"AUC drop at 10 dB SNR: {report['auc_drop_at_10_db']:.3f} (target ≤ 0.03)")
    for kind, g in gate.items():
        print(f"noise only, {kind:9}: {g['unsure']:.0%} unsure, {g['abnormal']:.0%} abnormal")
    if gate:
        print(f"noise only, all: {report['noise_only_unsure_share']:.0%} unsure (target ≥ 90 %)")
    else:
        print("noise only: none simulated (--noise-only 0)")
    print(f"wrote {args.out / 'phone_simulation.json'}")


if __name__ == "__main__":
    main()
