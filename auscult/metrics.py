"""Record-level metrics: sensitivity, specificity, their mean (MAcc), AUC, F1, confusion, curves.

Labels are 1 = abnormal (positive class), 0 = normal. Plots use matplotlib's Agg backend and
are imported only when drawn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "BinaryMetrics",
    "best_macc",
    "binary_metrics",
    "unsure_half_right",
    "metrics_by_group",
    "choose_threshold",
    "plot_curves",
    "plot_reliability",
    "pr_curve",
    "roc_auc",
    "roc_curve",
]


@dataclass(frozen=True)
class BinaryMetrics:
    n: int
    n_abnormal: int
    threshold: float
    sensitivity: float  # Se: abnormal recordings called abnormal
    specificity: float  # Sp: normal recordings called normal
    macc: float  # (Se + Sp) / 2, the PhysioNet 2016 score
    auc: float
    f1: float
    accuracy: float
    tp: int
    fn: int
    tn: int
    fp: int

    def as_dict(self) -> dict[str, float | int]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney, ties counted half); NaN with one class."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate, thresholds), thresholds descending."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    thresholds = np.r_[np.inf, np.unique(s)[::-1]]
    tpr = np.array([np.mean(s[y] >= t) if y.any() else np.nan for t in thresholds])
    fpr = np.array([np.mean(s[~y] >= t) if (~y).any() else np.nan for t in thresholds])
    return fpr, tpr, thresholds


def best_macc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The highest MAcc any threshold reaches on these very scores: a ceiling for diagnosis
    (how much a carried threshold costs), never a result, since the threshold saw the labels."""
    fpr, tpr, _ = roc_curve(y_true, scores)
    return float(np.nanmax((tpr + 1.0 - fpr) / 2.0))


def pr_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) over all thresholds."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    recall, precision = [], []
    for t in np.unique(s)[::-1]:
        called = s >= t
        recall.append(np.sum(called & y) / max(1, y.sum()))
        precision.append(np.sum(called & y) / max(1, called.sum()))
    return np.asarray(recall), np.asarray(precision)


def binary_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> BinaryMetrics:
    """Metrics of the decision ``score >= threshold`` → abnormal."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    called = s >= threshold
    tp, fn = int(np.sum(called & y)), int(np.sum(~called & y))
    tn, fp = int(np.sum(~called & ~y)), int(np.sum(called & ~y))
    se = tp / (tp + fn) if tp + fn else float("nan")
    sp = tn / (tn + fp) if tn + fp else float("nan")
    precision = tp / (tp + fp) if tp + fp else 0.0
    f1 = 2 * precision * se / (precision + se) if precision + se > 0 else 0.0
    return BinaryMetrics(
        n=len(y),
        n_abnormal=int(y.sum()),
        threshold=float(threshold),
        sensitivity=se,
        specificity=sp,
        macc=(se + sp) / 2,
        auc=roc_auc(y, s),
        f1=f1,
        accuracy=(tp + tn) / max(1, len(y)),
        tp=tp,
        fn=fn,
        tn=tn,
        fp=fp,
    )


def unsure_half_right(
    y_true: np.ndarray, scores: np.ndarray, threshold: float, unsure: np.ndarray
) -> dict[str, float | int]:
    """Se, Sp and MAcc of a three-way answer, an "unsure" counting as half right.

    This is how the PhysioNet/CinC 2016 scoring treats an unsure answer, and how Auscult is
    scored independently: refusing to call a recording costs half of a correct call, so
    "unsure" pays only where the model would be right less than half the time.
    """
    y = np.asarray(y_true).astype(bool)
    called = np.asarray(scores, dtype=np.float64) >= threshold
    unsure = np.asarray(unsure, dtype=bool)
    right = np.where(unsure, 0.5, (called == y).astype(float))
    se = float(right[y].mean()) if y.any() else float("nan")
    sp = float(right[~y].mean()) if (~y).any() else float("nan")
    return {
        "n": len(y),
        "unsure": int(unsure.sum()),
        "unsure_share": round(float(unsure.mean()), 4) if len(y) else 0.0,
        "sensitivity": round(se, 4),
        "specificity": round(sp, 4),
        "macc": round((se + sp) / 2, 4),
    }


def metrics_by_group(
    y_true: np.ndarray, scores: np.ndarray, threshold: float, groups: np.ndarray
) -> dict[str, dict[str, float | int]]:
    """:func:`binary_metrics` of each group (e.g. PhysioNet database), keyed by group name."""
    groups = np.asarray(groups)
    y, s = np.asarray(y_true), np.asarray(scores)
    return {
        str(g): binary_metrics(y[groups == g], s[groups == g], threshold).as_dict()
        for g in sorted(set(groups.tolist()))
    }


def choose_threshold(y_true: np.ndarray, scores: np.ndarray, min_sensitivity: float = 0.9) -> float:
    """The threshold with the best MAcc among those catching ≥ ``min_sensitivity`` abnormals.

    Missing an abnormal heart costs more than a second opinion on a normal one, so the
    threshold may give up some specificity to keep sensitivity high. Falls back to the best
    MAcc when no threshold reaches the sensitivity floor.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    candidates = np.unique(s)
    best, best_macc, fallback, fallback_macc = None, -1.0, 0.5, -1.0
    for t in candidates:
        m = binary_metrics(y, s, t)
        if m.macc > fallback_macc:
            fallback, fallback_macc = t, m.macc
        if m.sensitivity >= min_sensitivity and m.macc > best_macc:
            best, best_macc = t, m.macc
    chosen = best if best is not None else fallback
    # place the cut half-way to the next lower score so it does not sit on a training value
    lower = candidates[candidates < chosen]
    return float((chosen + lower.max()) / 2) if lower.size else float(chosen)


def plot_reliability(
    y_true: np.ndarray, probabilities: np.ndarray, out_path: Path, title: str = ""
) -> Path:
    """Reliability diagram: observed abnormal rate against predicted probability, 10 bins."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from auscult.calibration import expected_calibration_error, reliability_bins

    bins = reliability_bins(probabilities, y_true)
    ece = expected_calibration_error(probabilities, y_true)
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    ax.plot([0, 1], [0, 1], color="#999", lw=1, ls="--", label="perfectly calibrated")
    mean_p = [b["mean_probability"] for b in bins]
    ax.plot(mean_p, [b["observed_rate"] for b in bins], "o-", color="#c0392b", lw=2,
            label=f"model (ECE {ece:.3f})")  # fmt: skip
    for b, x in zip(bins, mean_p, strict=True):
        ax.annotate(str(b["count"]), (x, b["observed_rate"]), textcoords="offset points",
                    xytext=(4, -10), fontsize=7, color="#555")  # fmt: skip
    ax.set(xlabel="predicted probability abnormal", ylabel="observed share abnormal",
           xlim=(0, 1), ylim=(0, 1), title=f"Reliability {title}".strip())  # fmt: skip
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path)
    plt.close(fig)
    return out_path


def plot_curves(
    y_true: np.ndarray, scores: np.ndarray, threshold: float, out_dir: Path, title: str = ""
) -> list[Path]:
    """Write ROC, precision–recall and confusion-matrix PNGs; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    m = binary_metrics(y_true, scores, threshold)
    paths = []

    fpr, tpr, _ = roc_curve(y_true, scores)
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    ax.plot(fpr, tpr, color="#c0392b", lw=2, label=f"AUC {m.auc:.3f}")
    ax.plot([0, 1], [0, 1], color="#999", lw=1, ls="--")
    cut = f"cut {threshold:.2f}: Se {m.sensitivity:.2f}, Sp {m.specificity:.2f}"
    ax.scatter([1 - m.specificity], [m.sensitivity], color="#222", zorder=3, label=cut)
    ax.set(xlabel="1 − specificity", ylabel="sensitivity", title=f"ROC {title}".strip())
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / "roc.png")
    fig.savefig(paths[-1])
    plt.close(fig)

    recall, precision = pr_curve(y_true, scores)
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    ax.plot(recall, precision, color="#2c3e50", lw=2)
    ax.axhline(m.n_abnormal / max(1, m.n), color="#999", lw=1, ls="--", label="prevalence")
    ax.set(xlabel="recall (sensitivity)", ylabel="precision", ylim=(0, 1.02),
           title=f"Precision–recall {title}".strip())  # fmt: skip
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / "pr.png")
    fig.savefig(paths[-1])
    plt.close(fig)

    cm = np.array([[m.tn, m.fp], [m.fn, m.tp]])
    fig, ax = plt.subplots(figsize=(4, 3.6), dpi=120)
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=14,
                color="white" if v > cm.max() / 2 else "black")  # fmt: skip
    ax.set_xticks([0, 1], ["normal", "abnormal"])
    ax.set_yticks([0, 1], ["normal", "abnormal"])
    ax.set(xlabel="model says", ylabel="reference label", title=f"Confusion {title}".strip())
    fig.tight_layout()
    paths.append(out_dir / "confusion.png")
    fig.savefig(paths[-1])
    plt.close(fig)
    return paths
