"""Train the ECG beat classifier on MIT-BIH DS1 and export it to models/ (LiteRT + card).

    python scripts/ecg_train.py                  # full run: writes models/ecg_beats.*
    python scripts/ecg_train.py --epochs 1 --out /tmp/ecg   # smoke run

Inter-patient protocol (de Chazal et al. 2004): DS1 records and the four paced records
(which DS2 never holds) are read here, DS2 only by ``scripts/ecg_evaluate.py``. The model's
thresholds are chosen recall-first on out-of-fold scores — the training records split by
record into three groups, each scored by a model trained on the other two: best F2 for V,
F1 for F and paced beats. S beats are called by prematurity (previous RR against the
record's mean), the threshold with the best F2 on DS1's reference beats. The final model is
then trained on all training records with the same recipe. Augmentations make the model
indifferent to gain, baseline, powerline and muscle noise and small timing errors: consumer
devices record lead I at their own gain, MIT-BIH mostly MLII.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import _common
import numpy as np
from tqdm import tqdm

from auscult.ecg.classify import CHANNELS, CLASSES, WAVE_LEN, WAVE_RATE, beat_inputs
from auscult.ecg.mitdb import DS1, PACED, read_reference
from auscult.ecg.reading import load_ecg, pick_lead
from auscult.inbox import write_atomically
from config import get_settings

SEED = 2004
MIN_F = 0.1
NEVER = 1.01  # a threshold no probability reaches
#: Training records: DS1 and the paced records (which DS2 never holds).
TRAIN = (*DS1, *PACED)


def dataset(folder: Path, names: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per record: waves, RR features and class indices of its reference beats (paced
    beats "/" as P; fusion and unclassifiable beats left out)."""
    out = {}
    for name in tqdm(names, desc="records", unit="rec"):
        rec = load_ecg(folder / f"{name}.hea")
        ref = read_reference(folder, name)
        lead = rec.lead(pick_lead(rec.leads))
        waves, rr = beat_inputs(lead, rec.rate, ref.samples)  # RR from every beat, Q too
        classes = np.where(ref.symbols == "/", "P", ref.classes)
        keep = np.isin(classes, CLASSES)
        y = np.array([CLASSES.index(c) for c in classes[keep]])
        out[name] = (waves[keep], rr[keep], y)
    return out


def augment(waves: np.ndarray, rr: np.ndarray, rng: np.random.Generator):
    """Gain, baseline, powerline, muscle noise, timing jitter; RR measured a little off.
    Every channel gets the same change (the typical beat is nearly free of them)."""
    n = len(waves)
    t = np.arange(WAVE_LEN) / WAVE_RATE
    extra = rng.normal(0, 0.08, (n, 1)) + rng.normal(0, 0.25, (n, 1)) * (t - t.mean())[None, :]
    mains = rng.choice([50.0, 60.0], (n, 1))
    phase = rng.uniform(0, 6.3, (n, 1))
    extra += rng.uniform(0, 0.05, (n, 1)) * np.sin(2 * np.pi * mains * t[None, :] + phase)
    extra += rng.normal(0, 1, (n, WAVE_LEN)) * rng.uniform(0, 0.06, (n, 1))
    x = waves * rng.uniform(0.6, 1.6, (n, 1, 1)) + extra[:, :, None]
    x = np.roll(x, rng.integers(-3, 4), axis=1)
    r = rr * rng.normal(1.0, 0.03, rr.shape)
    return x.astype(np.float32), r.astype(np.float32)


def build_model():
    import keras
    from keras import layers

    wave = keras.Input((WAVE_LEN, CHANNELS), name="wave")
    rr = keras.Input((6,), name="rr")
    x = wave
    for filters, k in ((16, 9), (24, 7), (32, 5), (32, 3)):
        x = layers.Conv1D(filters, k, padding="same", activation="relu")(x)
        x = layers.MaxPooling1D(2)(x)
    x = layers.Concatenate()([layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)])
    r = layers.Dense(16, activation="relu")(rr)
    h = layers.Concatenate()([x, r])
    h = layers.Dense(32, activation="relu")(h)
    h = layers.Dropout(0.2)(h)
    out = layers.Dense(len(CLASSES), activation="softmax")(h)
    model = keras.Model([wave, rr], out)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    return model


def fit(data, names: list[str], epochs: int, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    waves = np.concatenate([data[n][0] for n in names])
    rr = np.concatenate([data[n][1] for n in names])
    y = np.concatenate([data[n][2] for n in names])
    counts = np.bincount(y, minlength=len(CLASSES)).astype(float)
    weights = np.sqrt(counts.sum() / (len(CLASSES) * np.maximum(counts, 1)))
    model = build_model()
    rng = np.random.default_rng(seed)
    for _ in tqdm(range(epochs), desc="epochs", unit="ep", leave=False):
        xw, xr = augment(waves, rr, rng)
        model.fit(
            [xw, xr],
            y,
            sample_weight=weights[y],
            batch_size=256,
            epochs=1,
            shuffle=True,
            verbose=0,
        )
    return model


def model_thresholds(probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Per model class, the threshold with the best F-beta out of fold: β = 2 (recall counts
    four times precision) for the dangerous V beats, β = 1 for F and paced beats. A class
    whose best F-score stays under ``MIN_F`` is never called (threshold above 1): calling it
    would mislabel more normal beats than it finds."""
    out = {}
    for name in ("V", "F", "P"):
        k = CLASSES.index(name)
        beta2 = 4.0 if name == "V" else 1.0
        positive = y == k
        if not positive.any():
            out[name] = 0.5
            continue
        grid = np.unique(np.quantile(probs[:, k], np.linspace(0.5, 0.9999, 400)))
        best, best_f = 0.5, -1.0
        for t in grid:
            called = probs[:, k] >= t
            tp = float(np.sum(called & positive))
            if tp == 0:
                continue
            precision, recall = tp / called.sum(), tp / positive.sum()
            f = (1 + beta2) * precision * recall / (beta2 * precision + recall)
            if f > best_f:
                best, best_f = float(t), f
        out[name] = best if best_f >= MIN_F else NEVER
    return out


def premature_threshold(data, names: list[str]) -> float:
    """The S rule's threshold on previous RR / record mean RR: best F2 for S against N and F
    beats of the named records (reference beats; a two-digit grid, so nothing to overfit)."""
    rr = np.concatenate([data[n][1] for n in names])
    y = np.concatenate([data[n][2] for n in names])
    candidates = np.isin(y, [CLASSES.index(c) for c in ("N", "S", "F")])
    early_ratio, is_s = rr[candidates, 2], y[candidates] == CLASSES.index("S")
    best, best_f = 0.8, -1.0
    for t in np.round(np.arange(0.6, 1.0, 0.02), 2):
        called = early_ratio < t
        tp = float(np.sum(called & is_s))
        if tp == 0:
            continue
        precision, recall = tp / called.sum(), tp / is_s.sum()
        f = 5 * precision * recall / (4 * precision + recall)
        if f > best_f:
            best, best_f = float(t), f
    return best


def class_report(y: np.ndarray, pred: np.ndarray) -> dict[str, dict[str, float]]:
    rep = {}
    for k, name in enumerate(CLASSES):
        tp = int(np.sum((pred == k) & (y == k)))
        rep[name] = {
            "se": round(tp / max(1, int(np.sum(y == k))), 4),
            "ppv": round(tp / max(1, int(np.sum(pred == k))), 4),
        }
    return rep


def main() -> None:
    s = get_settings()
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-dir", type=Path, default=s.ecg_data_dir)
    p.add_argument("--epochs", type=int, default=14)
    p.add_argument("--out", type=Path, default=s.models_dir)
    p.add_argument("--oof", type=Path, help="also save the out-of-fold scores here (.npz)")
    a = p.parse_args()
    _common.setup_logging()
    from auscult.ecg.classify import decide

    started = time.perf_counter()
    data = dataset(a.data_dir, list(TRAIN))
    groups = [list(DS1[i::3]) + list(PACED[i::3]) for i in range(3)]
    paced_oof = {}
    oof_p, oof_y = [], []
    for i, held in enumerate(tqdm(groups, desc="out-of-fold", unit="fold")):
        model = fit(data, [n for n in TRAIN if n not in held], a.epochs, SEED + i)
        for n in held:
            oof_p.append(model.predict([data[n][0], data[n][1]], verbose=0, batch_size=4096))
            oof_y.append(data[n][2])
            paced_oof[n] = oof_p[-1]
    probs, y = np.concatenate(oof_p), np.concatenate(oof_y)
    if a.oof:
        np.savez(a.oof, probs=probs, y=y)
    thresholds = model_thresholds(probs, y)
    thresholds["S_premature"] = premature_threshold(data, list(DS1))
    oof_rr = np.concatenate([data[n][1] for g in groups for n in g])
    oof = class_report(y, decide(probs, thresholds, oof_rr))
    paced_share = {
        n: round(float(np.mean(decide(v, thresholds, data[n][1]) == CLASSES.index("P"))), 4)
        for n, v in paced_oof.items()
    }
    model = fit(data, list(TRAIN), a.epochs, SEED)
    a.out.mkdir(parents=True, exist_ok=True)
    tflite = a.out / f"{s.ecg_model_name}.tflite"
    model.export(str(tflite), format="litert", verbose=False)
    card = {
        "version": datetime.now(UTC).strftime("ecg-%Y.%m.%d-%H%M"),
        "task": "AAMI beat classes N, S, V, F from one ECG lead (MIT-BIH DS1, inter-patient)",
        "classes": list(CLASSES),
        "thresholds": thresholds,
        "decision": "V, F, P at or above their thresholds (V wins); S: not V/F/P and previous "
        "RR < S_premature × the record's mean RR; else N",
        "input": {
            "wave_rate_hz": WAVE_RATE,
            "wave_len": WAVE_LEN,
            "channels": ["beat"],
            "rr_features": 6,
        },
        "training": {
            "records": list(TRAIN),
            "beats": {c: int(np.sum(y == k)) for k, c in enumerate(CLASSES)},
            "epochs": a.epochs,
            "seed": SEED,
            "thresholds": "F2 (V) or F1 (F, P) best out of fold; S_premature: best F2 on DS1 "
            "reference beats",
            "seconds": round(time.perf_counter() - started, 1),
            "machine": platform.machine(),
        },
        "out_of_fold": oof,
        "out_of_fold_paced_share": paced_share,
        "params": int(model.count_params()),
        "size_bytes": tflite.stat().st_size,
    }
    write_atomically(
        a.out, f"{s.ecg_model_name}.json", (json.dumps(card, indent=2) + "\n").encode()
    )
    print(
        json.dumps(
            {
                "thresholds": thresholds,
                "out_of_fold": oof,
                "paced_share": paced_share,
                "seconds": card["training"]["seconds"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
