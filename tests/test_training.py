"""Training helpers that need no TensorFlow: weights, augmentation, decision rule, --set."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from auscult.augment import AugmentParams, augment_record, compress, gain_riding
from auscult.cache import CachedRecord
from auscult.datasets import LabelledRecord
from auscult.training import TrainConfig, fit_decision, record_weights

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from gpu_optimized_train import with_overrides


def _records(counts: dict[tuple[str, int], int]) -> list[CachedRecord]:
    out = []
    for (db, label), n in counts.items():
        for i in range(n):
            record = LabelledRecord(f"{db}{label}{i}", db, Path("x.wav"), label)
            out.append(CachedRecord(record, np.zeros((32, 10), np.float32), 10.0))
    return out


COUNTS = {("a", 1): 70, ("a", 0): 30, ("e", 1): 10, ("e", 0): 890}


@pytest.mark.parametrize("mode", ["size", "sqrt"])
def test_labels_weigh_the_same_within_each_database(mode):
    records = _records(COUNTS)
    w = record_weights(records, mode)
    key = [(c.record.database, c.record.label) for c in records]
    total = {k: w[[i for i, kk in enumerate(key) if kk == k]].sum() for k in COUNTS}
    assert total[("a", 1)] == pytest.approx(total[("a", 0)])
    assert total[("e", 1)] == pytest.approx(total[("e", 0)])
    assert w.mean() == pytest.approx(1.0)


def test_sqrt_weighting_gives_a_large_database_the_square_root_of_its_size():
    records = _records(COUNTS)
    w, db = record_weights(records, "sqrt"), np.array([c.record.database for c in records])
    assert w[db == "e"].sum() / w[db == "a"].sum() == pytest.approx(np.sqrt(900 / 100))
    w = record_weights(records, "size")
    assert w[db == "e"].sum() / w[db == "a"].sum() == pytest.approx(9.0)


def test_unknown_database_weighting_is_refused():
    with pytest.raises(ValueError, match="database_weight"):
        record_weights(_records(COUNTS), "equal")


def test_gain_riding_moves_the_level_over_time_but_not_the_spectrum_shape():
    rng = np.random.default_rng(0)
    db = rng.normal(-40, 5, (32, 500)).astype(np.float32)
    out = gain_riding(db, rng, AugmentParams(agc_db=8.0))
    shift = out - db
    assert np.allclose(shift, shift[0:1], atol=1e-4)  # the same gain for every band in a frame
    assert np.ptp(shift[0]) == pytest.approx(8.0, rel=1e-3)


def test_compression_only_lowers_the_loud_frames():
    rng = np.random.default_rng(1)
    db = np.full((32, 400), -60.0, np.float32)
    db[:, ::50] = -20.0  # a loud beat every second
    out = compress(db, rng, AugmentParams(compress_ratio=(4.0, 4.0)))
    assert np.all(out <= db + 1e-4)
    assert np.all(out[:, ::50] < -20.0 - 10.0)  # beats squashed by tens of dB
    quiet = np.ones(400, bool)
    for k in range(3):
        quiet[k::50] = False
    assert np.allclose(out[:, quiet], db[:, quiet])


def test_augmentation_is_reproducible_from_the_seed():
    db = np.random.default_rng(2).normal(-40, 8, (32, 300)).astype(np.float32)
    one = augment_record(db, 1, np.random.default_rng(9), AugmentParams(), 80.0)
    two = augment_record(db, 1, np.random.default_rng(9), AugmentParams(), 80.0)
    np.testing.assert_array_equal(one, two)


def test_decision_rule_is_fitted_on_validation_scores_only():
    rng = np.random.default_rng(3)
    labels = (rng.random(400) < 0.25).astype(int)
    raw = np.clip(0.3 + 0.25 * labels + rng.normal(0, 0.15, 400), 0.01, 0.99)
    rule = fit_decision(raw, labels, TrainConfig())
    p = rule.calibration(raw)
    called = p >= rule.threshold
    assert called[labels == 1].mean() >= 0.9  # the sensitivity floor, on the calibrated scale
    assert rule.band.low < rule.threshold < rule.band.high
    assert rule.band.contains_all(p).mean() == pytest.approx(0.1, abs=0.01)


def test_set_overrides_reach_nested_settings():
    cfg = with_overrides(
        TrainConfig(), ["augment.noise_prob_abnormal=0.2", "epochs=3", "augment.snr_db=5,10"]
    )
    assert cfg.augment.noise_prob_abnormal == 0.2
    assert cfg.epochs == 3
    assert cfg.augment.snr_db == (5.0, 10.0)
    with pytest.raises(SystemExit, match="no such setting"):
        with_overrides(TrainConfig(), ["augment.nope=1"])


def test_mixup_blends_only_across_databases_and_keeps_each_window_dominant():
    import dataclasses

    from auscult.training import mix_across_databases

    rng = np.random.default_rng(0)
    x = np.stack([np.full((4, 5), v, np.float32) for v in (0.0, 0.0, 10.0, 10.0)])
    y = np.array([0.0, 0.0, 1.0, 1.0], np.float32)
    dbs = np.array(["a", "a", "b", "b"])
    cfg = dataclasses.replace(TrainConfig(), mixup_share=1.0, mixup_alpha=0.4)
    mx, my = mix_across_databases(x, y, dbs, cfg, rng)
    # a window of database a is blended only with b's (value 10), never with its own
    assert np.all(mx[:2] > 0)
    assert np.all(mx[:2] <= 5.0)  # its own weight stays ≥ 0.5
    assert np.all(my[:2] <= 0.5)
    assert np.all(my[2:] >= 0.5)
    assert np.allclose(mx[:, 0, 0] / 10.0, my)  # labels blended by the same weight
    unchanged_x, unchanged_y = mix_across_databases(x, y, dbs, TrainConfig(), rng)  # share 0
    assert np.array_equal(unchanged_x, x)
    assert np.array_equal(unchanged_y, y)


def test_no_mixup_by_default_keeps_the_committed_recipe():
    assert TrainConfig().mixup_share == 0.0


def test_another_keras_backend_trains_without_tensorflow(monkeypatch):
    from types import SimpleNamespace

    from auscult.training import configure_devices

    fake_keras = SimpleNamespace(backend=SimpleNamespace(backend=lambda: "jax"))
    monkeypatch.setitem(sys.modules, "keras", fake_keras)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # importing it would fail
    assert configure_devices() == "jax backend"
