"""How the ECG module does on MIT-BIH, through the product's own path, across patients.

    python scripts/ecg_evaluate.py            # table + models/evaluation/ecg_evaluation.json
    python scripts/ecg_evaluate.py --json     # one JSON object on stdout
    python scripts/ecg_evaluate.py --choose-af   # the AF irregularity threshold, from DS1

- Beat detection on all 48 records (±150 ms, ventricular flutter spans left out as EC57
  says): sensitivity and positive predictivity.
- Beat classes on DS2 (never seen in training; detected beats matched to the reference):
  per-class sensitivity/PPV, the full confusion, and PR curves for V and S
  (``models/evaluation/ecg_pr.png``).
- Pacing on all 48 records (DS1 and the paced records were in training: their figures are
  in-sample; the model card holds the out-of-fold shares of the paced ones).
- Atrial fibrillation per 30 s segment on DS2 (reference: more than half the segment in
  an ``(AFIB`` episode).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import _common
import numpy as np
from tqdm import tqdm

from auscult.ecg.analyzer import EcgAnalyzer
from auscult.ecg.classify import CLASSES
from auscult.ecg.mitdb import DS1, DS2, PACED, read_reference, records
from auscult.ecg.reading import load_ecg
from auscult.ecg.rhythm import AF_IRREGULARITY, SEGMENT_S, af_segments
from config import get_settings

TOLERANCE_S = 0.15
REPORTED = ("N", "S", "V", "F", "Q")


def match(ref: np.ndarray, det: np.ndarray, tol: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one matching within ``tol`` samples: (ref index, det index) pairs."""
    pairs_r, pairs_d = [], []
    j = 0
    for i, r in enumerate(ref):
        while j < len(det) and det[j] < r - tol:
            j += 1
        if j < len(det) and abs(det[j] - r) <= tol:
            if j + 1 < len(det) and abs(det[j + 1] - r) < abs(det[j] - r):
                j += 1
            pairs_r.append(i)
            pairs_d.append(j)
            j += 1
    return np.array(pairs_r, dtype=np.int64), np.array(pairs_d, dtype=np.int64)


def outside(samples: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    keep = np.ones(len(samples), dtype=bool)
    for a, b in spans:
        keep &= ~((samples >= a) & (samples <= b))
    return keep


def af_reference(ref, n_segments: int, rate: int) -> np.ndarray:
    out = np.zeros(n_segments, dtype=bool)
    for k in range(n_segments):
        a, b = k * SEGMENT_S * rate, (k + 1) * SEGMENT_S * rate
        cover = sum(max(0, min(b, e) - max(a, s)) for s, e, label in ref.rhythm if label == "(AFIB")
        out[k] = cover > (b - a) / 2
    return out


def pr_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-score)
    hits = y[order]
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    recall = tp / max(1, hits.sum())
    return recall, precision


def plot_pr(
    curves: dict[str, tuple[np.ndarray, np.ndarray, tuple[float, float]]], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for name, (recall, precision, point) in curves.items():
        what = "model score" if name == "V" else "prematurity, before the AF rule"
        ax.plot(recall, precision, label=f"{name} beats ({what})")
        ax.scatter([point[0]], [point[1]], zorder=3)
    ax.set_xlabel("sensitivity (recall)")
    ax.set_ylabel("positive predictivity (precision)")
    ax.set_title("MIT-BIH DS2, inter-patient\n(dots: the product's decisions)", fontsize=10)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    s = get_settings()
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-dir", type=Path, default=s.ecg_data_dir)
    p.add_argument("--json", action="store_true", help="print one JSON object only")
    p.add_argument("--choose-af", action="store_true", help="print the DS1-chosen AF threshold")
    p.add_argument("--limit", type=int, default=0, help="only the first N records (smoke run)")
    p.add_argument("--out", type=Path, default=s.models_dir / "evaluation")
    a = p.parse_args()
    _common.setup_logging()
    analyzer = EcgAnalyzer(settings=s)
    names = records(a.data_dir)
    if a.limit:
        names = names[: a.limit]
    tol = int(TOLERANCE_S * s.ecg_rate)
    det_tp = det_fn = det_fp = 0
    confusion = np.zeros((len(REPORTED), len(REPORTED)), dtype=np.int64)  # ref × predicted
    scores: dict[str, list] = {"V": [], "S": []}
    truth: dict[str, list] = {"V": [], "S": []}
    paced_right, per_record = 0, {}
    af_pred, af_true, irr_ds1, af_ds1 = [], [], [], []
    for name in tqdm(names, desc="records", unit="rec", file=sys.stderr):
        rec = load_ecg(a.data_dir / f"{name}.hea", settings=s)
        ref = read_reference(a.data_dir, name)
        beats, rhythm = analyzer.read(rec)
        keep_ref = outside(ref.samples, ref.flutter)
        keep_det = outside(beats.peaks, ref.flutter)
        r_idx, d_idx = match(ref.samples[keep_ref], beats.peaks[keep_det], tol)
        tp, n_ref, n_det = len(r_idx), int(keep_ref.sum()), int(keep_det.sum())
        det_tp, det_fn, det_fp = det_tp + tp, det_fn + n_ref - tp, det_fp + n_det - tp
        paced_right += int(rhythm.paced == (name in PACED))
        per_record[name] = {
            "beats": n_ref,
            "missed": n_ref - tp,
            "extra": n_det - tp,
            "paced": rhythm.paced,
            "pacing_share": round(rhythm.pacing_share, 3),
        }
        if name in DS2:
            ref_cls = ref.classes[keep_ref][r_idx]
            pred = beats.classes[keep_det][d_idx]
            probs = beats.probs[keep_det][d_idx]
            # S is called by prematurity among beats the model does not call V, F or paced
            model_only = np.isin(pred, ("V", "F")) | beats.paced[keep_det][d_idx]
            early = np.where(model_only, -np.inf, 1.0 - beats.rr[keep_det][d_idx][:, 2])
            for rc, pc in zip(ref_cls, pred, strict=True):
                confusion[REPORTED.index(rc), REPORTED.index(pc)] += 1
            missed = np.setdiff1d(np.arange(n_ref), r_idx)
            for rc in ref.classes[keep_ref][missed]:  # a missed beat is a missed class
                confusion[REPORTED.index(rc), REPORTED.index("Q")] += 1
            scores["V"].append(probs[:, CLASSES.index("V")])
            scores["S"].append(early)
            for c in ("V", "S"):
                truth[c].append(ref_cls == c)
        if name in DS2 or name in DS1:
            irr = af_segments(
                beats.peaks[beats.judged], beats.classes[beats.judged], rec.rate, rec.duration_s
            )
            ref_af = af_reference(ref, len(irr), rec.rate)
            ok = np.array([v is not None for v in irr])
            values = np.array([np.nan if v is None else v for v in irr])
            if name in DS2:
                af_pred.append(np.where(ok, values >= AF_IRREGULARITY, False))
                af_true.append(ref_af)
            else:
                irr_ds1.append(values[ok])
                af_ds1.append(ref_af[ok])
    if a.choose_af:
        v, t = np.concatenate(irr_ds1), np.concatenate(af_ds1)
        best = max(
            (th for th in np.round(np.arange(0.03, 0.4, 0.005), 3) if np.mean(v[~t] < th) >= 0.95),
            key=lambda th: (np.mean(v[t] >= th), th),
        )
        print(
            json.dumps(
                {
                    "af_threshold": float(best),
                    "ds1_se": float(np.mean(v[t] >= best)),
                    "ds1_sp": float(np.mean(v[~t] < best)),
                }
            )
        )
        return
    report: dict = {
        "records": len(names),
        "detection_se": round(det_tp / max(1, det_tp + det_fn), 5),
        "detection_ppv": round(det_tp / max(1, det_tp + det_fp), 5),
        "paced_correct": paced_right,
        "paced_of": len(names),
        "model_version": analyzer.model.version,
    }
    if confusion.sum():
        for c in ("N", "S", "V", "F"):
            k = REPORTED.index(c)
            report[f"{c.lower()}_se"] = round(confusion[k, k] / max(1, confusion[k].sum()), 4)
            report[f"{c.lower()}_ppv"] = round(confusion[k, k] / max(1, confusion[:, k].sum()), 4)
        report["ds2_confusion"] = {
            "rows_reference_columns_predicted": list(REPORTED),
            "counts": confusion.tolist(),
        }
        curves = {}
        for c in ("V", "S"):
            y, sc = np.concatenate(truth[c]), np.concatenate(scores[c])
            recall, precision = pr_curve(y, sc)
            curves[c] = (recall, precision, (report[f"{c.lower()}_se"], report[f"{c.lower()}_ppv"]))
        plot_pr(curves, a.out / "ecg_pr.png")
    if af_pred:
        pred, true = np.concatenate(af_pred), np.concatenate(af_true)
        report["af_se"] = round(float(np.mean(pred[true])) if true.any() else float("nan"), 4)
        report["af_sp"] = round(float(np.mean(~pred[~true])) if (~true).any() else float("nan"), 4)
        report["af_segments"] = {"af": int(true.sum()), "other": int((~true).sum())}
    report["per_record"] = per_record
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "ecg_evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    if a.json:
        print(json.dumps(report))
        return
    keys = (
        "detection_se",
        "detection_ppv",
        "v_se",
        "v_ppv",
        "s_se",
        "s_ppv",
        "n_se",
        "n_ppv",
        "f_se",
        "f_ppv",
        "paced_correct",
        "af_se",
        "af_sp",
    )
    for k in keys:
        if k in report:
            print(f"{k:14} {report[k]}")
    if "ds2_confusion" in report:
        print("DS2 confusion (rows: reference, columns: predicted)")
        print("     " + " ".join(f"{c:>7}" for c in REPORTED))
        for c, row in zip(REPORTED, report["ds2_confusion"]["counts"], strict=True):
            print(f"{c:>4} " + " ".join(f"{v:>7}" for v in row))


if __name__ == "__main__":
    main()
