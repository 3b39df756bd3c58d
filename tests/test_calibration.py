"""Calibration: honest probabilities from ranked scores, and the borderline band."""

from __future__ import annotations

import numpy as np
import pytest

from auscult.calibration import (
    BorderlineBand,
    Calibration,
    choose_band,
    expected_calibration_error,
    fit_platt,
    logit,
    reliability_bins,
)


def _scores(n: int = 4000, slope: float = 2.5, intercept: float = -1.0, seed: int = 0):
    """Raw scores whose true probability is sigmoid(slope · logit(raw) + intercept)."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.02, 0.98, n)
    truth = 1 / (1 + np.exp(-(slope * logit(raw) + intercept)))
    return raw, (rng.random(n) < truth).astype(int)


def test_platt_recovers_the_true_map():
    raw, y = _scores()
    cal = fit_platt(raw, y)
    assert cal.method == "platt"
    assert cal.slope == pytest.approx(2.5, rel=0.1)
    assert cal.intercept == pytest.approx(-1.0, abs=0.15)


def test_calibration_lowers_the_error_and_keeps_the_ranking():
    raw, y = _scores()
    cal = fit_platt(raw, y)
    assert expected_calibration_error(cal(raw), y) < 0.03 < expected_calibration_error(raw, y)
    assert np.array_equal(np.argsort(cal(raw), kind="stable"), np.argsort(raw, kind="stable"))


def test_identity_calibration_when_metadata_has_none():
    cal = Calibration.from_dict(None)
    assert cal.scalar(0.3) == pytest.approx(0.3)
    assert Calibration.from_dict(fit_platt(*_scores()).as_dict()).method == "platt"


def test_platt_needs_both_labels():
    with pytest.raises(ValueError, match="both labels"):
        fit_platt(np.array([0.2, 0.4]), np.array([1, 1]))


def test_reliability_bins_count_every_record():
    raw, y = _scores(500)
    bins = reliability_bins(raw, y)
    assert sum(b["count"] for b in bins) == 500
    assert all(b["low"] <= b["mean_probability"] <= b["high"] for b in bins)


def test_band_holds_the_records_nearest_the_threshold():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.01, 0.99, 1000)
    band = choose_band(p, threshold=0.4, share=0.1)
    assert band.low < 0.4 < band.high
    assert band.share == pytest.approx(0.1, abs=0.005)
    assert band.contains_all(p).mean() == pytest.approx(band.share)
    # symmetric in logit around the threshold
    assert logit(band.high) - logit(0.4) == pytest.approx(logit(0.4) - logit(band.low))


def test_an_empty_band_calls_everything():
    band = BorderlineBand.from_dict(None, threshold=0.4)
    assert not band.contains(0.4)
    assert not band.contains(0.39)
