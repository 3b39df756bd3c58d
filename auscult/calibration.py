"""Calibrated record probabilities and the borderline band around the decision threshold.

The CNN's mean window probability ranks recordings well but is not a probability: a score
of 0.33 does not mean one in three such recordings is abnormal. Platt scaling (a logistic
regression on the logit of the raw score, fitted on validation records only) maps it to one
that is, for recordings like the validation records. The map is strictly increasing, so the
ranking (AUC) and the decision are unchanged; only the numbers a person reads become honest.

Isotonic regression was considered and not used: it maps ranges of scores onto one value, so
distinct recordings would tie and the ranking would coarsen, for little gain with ~400
validation records.

The borderline band is an interval around the threshold (symmetric in logit units) holding
the validation records whose scores are nearest to it. A recording whose calibrated
probability falls inside it is reported as "unsure — borderline", never as a confident call.

Reference: Platt J., "Probabilistic outputs for support vector machines and comparisons to
regularized likelihood methods", Advances in Large Margin Classifiers, 1999.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "Calibration",
    "BorderlineBand",
    "choose_band",
    "expected_calibration_error",
    "fit_platt",
    "logit",
    "reliability_bins",
]

_EPS = 1e-6


def logit(p: np.ndarray | float) -> np.ndarray:
    """log(p / (1 − p)), with p kept inside [1e-6, 1 − 1e-6]."""
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class Calibration:
    """``p_calibrated = sigmoid(slope · logit(p_raw) + intercept)``; identity by default."""

    slope: float = 1.0
    intercept: float = 0.0
    method: str = "identity"

    def __call__(self, raw: np.ndarray | float) -> np.ndarray:
        return _sigmoid(self.slope * logit(raw) + self.intercept)

    def scalar(self, raw: float) -> float:
        return float(self(raw))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Calibration:
        """Read ``metadata["calibration"]``; a model without one keeps its raw scores."""
        if not data:
            return cls()
        return cls(float(data["slope"]), float(data["intercept"]), str(data["method"]))


def fit_platt(raw: np.ndarray, labels: np.ndarray, iterations: int = 100) -> Calibration:
    """Fit Platt scaling by Newton's method on the log loss of ``labels`` given ``raw`` scores.

    Uses Platt's smoothed targets ((n₊ + 1)/(n₊ + 2) and 1/(n₋ + 2) instead of 1 and 0), so a
    validation set the model separates perfectly still gives a finite slope.
    """
    x = logit(raw)
    y = np.asarray(labels, dtype=np.float64)
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    if n_pos == 0 or n_neg == 0:
        raise ValueError("calibration needs validation records of both labels")
    target = np.where(y > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    design = np.column_stack([x, np.ones_like(x)])
    w = np.array([1.0, 0.0])
    for _ in range(iterations):
        p = _sigmoid(design @ w)
        gradient = design.T @ (p - target)
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return Calibration(slope=float(w[0]), intercept=float(w[1]), method="platt")


def reliability_bins(
    probabilities: np.ndarray, labels: np.ndarray, n_bins: int = 10
) -> list[dict[str, float]]:
    """Equal-width bins of predicted probability: count, mean prediction, observed rate."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    index = np.minimum((p * n_bins).astype(int), n_bins - 1)
    bins = []
    for b in range(n_bins):
        inside = index == b
        if inside.any():
            bins.append(
                {
                    "low": b / n_bins,
                    "high": (b + 1) / n_bins,
                    "count": int(inside.sum()),
                    "mean_probability": float(p[inside].mean()),
                    "observed_rate": float(y[inside].mean()),
                }
            )
    return bins


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, n_bins: int = 10
) -> float:
    """ECE: the count-weighted mean gap between predicted and observed rate over 10 bins."""
    bins = reliability_bins(probabilities, labels, n_bins)
    total = sum(b["count"] for b in bins)
    return float(
        sum(b["count"] * abs(b["mean_probability"] - b["observed_rate"]) for b in bins) / total
    )


@dataclass(frozen=True)
class BorderlineBand:
    """Calibrated probabilities ``low ≤ p < high`` are too close to the threshold to call."""

    low: float
    high: float
    share: float  # of validation records that fell inside when it was chosen

    def contains(self, probability: float) -> bool:
        return self.low <= probability < self.high

    def contains_all(self, probabilities: np.ndarray) -> np.ndarray:
        """:meth:`contains` of each probability, as a boolean array."""
        p = np.asarray(probabilities, dtype=np.float64)
        return (p >= self.low) & (p < self.high)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, threshold: float) -> BorderlineBand:
        """Read ``metadata["borderline"]``; without one the band is empty."""
        if not data:
            return cls(threshold, threshold, 0.0)
        return cls(float(data["low"]), float(data["high"]), float(data.get("share", 0.0)))


def choose_band(probabilities: np.ndarray, threshold: float, share: float = 0.1) -> BorderlineBand:
    """The band around ``threshold``, symmetric in logit, holding ``share`` of the records.

    Chosen on validation records: their calibrated probabilities nearest the threshold (in
    logit distance) are the ones a small change of device or recording would flip.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    distance = np.sort(np.abs(logit(p) - logit(threshold)))
    k = int(np.ceil(share * len(distance)))
    if k == 0:
        return BorderlineBand(threshold, threshold, 0.0)
    half = float(distance[k - 1]) + 1e-9
    centre = float(logit(threshold))
    low, high = float(_sigmoid(centre - half)), float(_sigmoid(centre + half))
    inside = float(np.mean((p >= low) & (p < high)))
    return BorderlineBand(low, high, inside)
