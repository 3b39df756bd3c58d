"""Record-level metrics agree with their definitions and with hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest

from auscult.metrics import (
    best_macc,
    binary_metrics,
    choose_threshold,
    metrics_by_group,
    plot_curves,
    roc_auc,
)


def test_perfect_and_inverted_rankings():
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0


def test_auc_counts_ties_as_half():
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5


def test_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = rng.random(200) + 0.3 * y
    pairs = [(p > n) + 0.5 * (p == n) for p in s[y == 1] for n in s[y == 0]]
    assert roc_auc(y, s) == pytest.approx(np.mean(pairs))


def test_sensitivity_specificity_and_confusion():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.1, 0.1, 0.1, 0.1, 0.1])
    m = binary_metrics(y, s, 0.5)
    assert (m.tp, m.fn, m.tn, m.fp) == (3, 1, 5, 1)
    assert m.sensitivity == 0.75
    assert m.specificity == pytest.approx(5 / 6)
    assert m.macc == pytest.approx((0.75 + 5 / 6) / 2)


def test_threshold_keeps_sensitivity_floor_when_it_can():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.7, 0.3, 0.6, 0.2, 0.1, 0.05])
    t = choose_threshold(y, s, min_sensitivity=1.0)
    assert binary_metrics(y, s, t).sensitivity == 1.0


def test_plots_are_written(tmp_path):
    y = np.array([0, 1, 0, 1, 1])
    paths = plot_curves(y, np.array([0.1, 0.9, 0.4, 0.6, 0.3]), 0.5, tmp_path)
    assert [p.name for p in paths] == ["roc.png", "pr.png", "confusion.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_metrics_by_group_scores_each_group_on_its_own():
    y = np.array([1, 0, 1, 0, 1, 1])
    s = np.array([0.9, 0.1, 0.2, 0.8, 0.7, 0.6])
    groups = np.array(["a", "a", "b", "b", "b", "b"])
    by = metrics_by_group(y, s, 0.5, groups)
    assert list(by) == ["a", "b"]
    assert by["a"]["auc"] == 1.0
    assert by["b"] == binary_metrics(y[2:], s[2:], 0.5).as_dict()


def test_best_macc_is_the_highest_any_threshold_reaches():
    y = np.array([0, 0, 1, 0, 1, 1])
    for s in (np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.9]), np.array([0.9, 0.8, 0.4, 0.3, 0.2, 0.1])):
        every = [binary_metrics(y, s, t).macc for t in np.r_[s, np.inf]]
        assert best_macc(y, s) == pytest.approx(max(every))
    assert best_macc(y, np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.9])) == pytest.approx(5 / 6)
