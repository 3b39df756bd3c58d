"""The committed model: files match metadata, Keras and LiteRT agree, it still scores, and the
trainer that made it still works end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import utils
from auscult.analyzer import Analyzer
from auscult.datasets import read_physionet, split_records
from auscult.metrics import roc_auc
from auscult.model import custom_objects
from auscult.model_card import PREPROCESSING_BEFORE_IT_WAS_STORED
from auscult.runner import ModelRunner, sha256_of
from config import get_settings

ROOT = Path(__file__).resolve().parent.parent


def _data_dir() -> Path:
    root = get_settings().data_dir
    if not root.exists():
        pytest.skip(f"PhysioNet data not found at {root}")
    return root


def test_metadata_describes_the_committed_files():
    s = get_settings()
    meta = json.loads(s.metadata_path.read_text())
    for key in ("preprocessing", "threshold", "metrics", "training", "files", "params"):
        assert key in meta
    assert {**PREPROCESSING_BEFORE_IT_WAS_STORED, **meta["preprocessing"]} == s.preprocessing()
    for name, info in meta["files"].items():
        assert sha256_of(s.models_dir / name) == info["sha256"], name
    assert s.tflite_path.stat().st_size <= 150 * 1024


def test_runner_refuses_a_model_trained_with_other_preprocessing(tmp_path):
    import dataclasses

    s = get_settings()
    for name in (s.tflite_path.name, s.metadata_path.name):
        (tmp_path / name).write_bytes((s.models_dir / name).read_bytes())
    other = dataclasses.replace(s, models_dir=tmp_path, n_mels=s.n_mels * 2)
    with pytest.raises(Exception, match="different preprocessing"):
        ModelRunner.from_settings(other)


def test_a_card_from_before_band_groups_reads_as_trained_on_every_band():
    import dataclasses

    from auscult.model_card import load_card

    s = get_settings()
    card = load_card(s)
    older = dataclasses.replace(
        card, preprocessing={k: v for k, v in card.preprocessing.items() if k != "band_group"}
    )

    assert older.preprocessing_difference(dataclasses.replace(s, band_group=1)) == ""
    assert older.preprocessing_difference(dataclasses.replace(s, band_group=4)) == (
        "band_group: model 1 vs config 4"
    )


@pytest.mark.slow
def test_keras_and_litert_outputs_agree():
    import keras

    s = get_settings()
    model = keras.models.load_model(s.keras_path, custom_objects=custom_objects())
    runner = ModelRunner.from_settings(s)
    rng = np.random.default_rng(0)
    windows = rng.normal(0, 1, size=(16, s.n_mels, s.window_frames)).astype(np.float32)
    from auscult.synthetic import heart_sound

    rec = utils.Recording(heart_sound(20.0, 4000, bpm=70, murmur=True, seed=2), 4000, 1)
    windows = np.concatenate([windows, utils.model_input(rec, s).windows])
    expected = model.predict(windows[..., None], verbose=0).ravel()
    np.testing.assert_allclose(runner.predict(windows), expected, atol=1e-4)


@pytest.mark.data
@pytest.mark.slow
def test_committed_model_still_separates_held_out_records():
    """Regression guard: AUC >= 0.90 on the test split (>= 200 records, never trained on)."""
    meta = json.loads(get_settings().metadata_path.read_text())
    split = meta["training"]["split"]
    _, _, test = split_records(read_physionet(_data_dir()), split["fractions"], split["seed"])
    assert len(test) >= 200
    analyzer = Analyzer()
    scores = [analyzer.analyze(r.path).probability for r in test]
    auc = roc_auc(np.array([r.label for r in test]), np.array(scores))
    assert auc >= 0.90, f"AUC {auc:.3f} on {len(test)} held-out records"


@pytest.mark.data
@pytest.mark.slow
def test_trainer_runs_end_to_end_on_a_few_records(tmp_path):
    """A one-epoch run on a few records exports a model the analyzer can load and use."""
    _data_dir()
    out = tmp_path / "model"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_optimized_train.py"), "--limit", "60",
         "--epochs", "1", "--crops", "2", "--out", str(out), "--cache", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["training"]["records"]["train"] > 0
    assert 0 < meta["threshold"] < 1
    lo, hi = meta["cycle_model"]["cnn_limits"]  # the blend holds the CNN to its validation range
    assert lo <= hi
    import dataclasses

    settings = dataclasses.replace(get_settings(), models_dir=out)
    record = read_physionet(_data_dir())[0]
    result = Analyzer(settings=settings).analyze(record.path)
    assert 0.0 <= result.probability <= 1.0
    assert result.window_probabilities


def test_adversarial_head_shares_the_features_and_reverses_their_gradient():
    import tensorflow as tf

    from auscult.model import build_model
    from auscult.training import adversarial_trainer

    model = build_model(32, 200)
    trainer = adversarial_trainer(model, n_databases=5, weight=0.5)
    x = tf.random.normal((3, 32, 200, 1))
    out = trainer(x)
    assert out["database"].shape == (3, 5)
    np.testing.assert_allclose(out["abnormal"].numpy(), model(x).numpy(), rtol=1e-5)
    features = trainer.get_layer("gap").output
    probe = tf.keras.Model(trainer.input, [features, trainer.get_layer("reverse_gradient").output])
    with tf.GradientTape(persistent=True) as tape:
        f, r = probe(x)
        plain, reversed_ = tf.reduce_sum(f), tf.reduce_sum(r)
    g_plain = tape.gradient(plain, model.get_layer("conv0").kernel)
    g_rev = tape.gradient(reversed_, model.get_layer("conv0").kernel)
    np.testing.assert_allclose(g_rev.numpy(), -0.5 * g_plain.numpy(), rtol=1e-4, atol=1e-7)


def test_many_windows_are_scored_in_batches_exactly_as_one_by_one():
    runner = ModelRunner.from_settings()
    assert len(runner._interpreters) == 2  # config.inference_threads: the batch is split
    x = np.random.default_rng(0).standard_normal((150, 32, 200)).astype(np.float32)
    batched = runner.predict(x)  # four calls of 38 (two padded), two per interpreter at once
    singles = np.concatenate([runner.predict(x[i : i + 1]) for i in range(0, 150, 7)])
    np.testing.assert_allclose(batched[::7], singles, rtol=1e-5, atol=1e-6)
    assert batched.shape == (150,)


def test_analyses_at_the_same_time_each_get_an_interpreter_and_their_own_scores():
    from concurrent.futures import ThreadPoolExecutor

    runner = ModelRunner.from_settings()
    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((14, 32, 200)).astype(np.float32) for _ in range(8)]
    alone = [runner.predict(b) for b in batches]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(runner.predict, batches))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_relaxed_frequency_norm_by_band_ignores_each_bands_gain_and_offset():
    """Normalising each band over time and channels removes a device's per-band colouring."""
    norm = custom_objects()["RelaxedFreqNorm"]
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, size=(2, 8, 50, 4)).astype(np.float32)
    gain = rng.uniform(0.5, 4.0, size=(1, 8, 1, 1)).astype(np.float32)
    offset = rng.normal(0, 3, size=(1, 8, 1, 1)).astype(np.float32)
    by_band = np.asarray(norm(0.0)(x))
    np.testing.assert_allclose(np.asarray(norm(0.0)(gain * x + offset)), by_band, atol=1e-3)
    np.testing.assert_allclose(by_band.mean(axis=(2, 3)), 0.0, atol=1e-5)
    whole = np.asarray(norm(1.0)(x))
    np.testing.assert_allclose(whole.mean(axis=(1, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(whole.std(axis=(1, 2, 3)), 1.0, atol=1e-3)
    np.testing.assert_allclose(np.asarray(norm(0.5)(x)), (whole + by_band) / 2, atol=1e-5)


def test_a_model_with_relaxed_frequency_norm_saves_reloads_and_exports_to_litert(tmp_path):
    import keras

    from auscult.model import ModelParams, build_model
    from auscult.runner import _Interpreter
    from auscult.training import export_model

    keras.utils.set_random_seed(0)
    model = build_model(32, 200, ModelParams(rfn_blocks=2))
    assert [layer.name for layer in model.layers if layer.name.startswith("rfn")] == [
        "rfn0",
        "rfn1",
    ]
    files = export_model(model, tmp_path, "rfn")
    x = np.random.default_rng(1).normal(0, 1, size=(3, 32, 200, 1)).astype(np.float32)
    expected = model.predict(x, verbose=0).ravel()
    reloaded = keras.models.load_model(
        files["keras"], compile=False, custom_objects=custom_objects()
    )
    np.testing.assert_allclose(reloaded.predict(x, verbose=0).ravel(), expected, atol=1e-6)
    np.testing.assert_allclose(_Interpreter(files["tflite"]).run([x]), expected, atol=1e-4)


def test_the_cnn_logit_is_held_to_the_middle_of_its_validation_scores_only_in_a_blend():
    import dataclasses

    from auscult.calibration import logit
    from auscult.training import TrainConfig, cnn_logit_limits

    scores = 1 / (1 + np.exp(-np.linspace(-5.0, 5.0, 101)))  # logits −5 … 5 in steps of 0.1
    lo, hi = cnn_logit_limits(scores, TrainConfig())  # the committed share: 10 % at each end
    assert (lo, hi) == pytest.approx((-4.0, 4.0), abs=1e-3)
    assert np.mean((logit(scores) < lo) | (logit(scores) > hi)) == pytest.approx(0.2, abs=0.02)
    assert cnn_logit_limits(scores, dataclasses.replace(TrainConfig(), cnn_limit_share=0)) is None
    assert cnn_logit_limits(scores, dataclasses.replace(TrainConfig(), cycle_weight=0)) is None


def test_the_card_keeps_the_cnn_limits_beside_the_cycle_model():
    import dataclasses

    from auscult.model_card import cycle_section, load_card

    card = load_card()
    model, weight = card.cycle_blend
    assert model is not None
    section = cycle_section(model, weight, (-2.5, 1.25))
    assert dataclasses.replace(card, cycle_model=section).cnn_limits == (-2.5, 1.25)
    older = {k: v for k, v in section.items() if k != "cnn_limits"}
    assert dataclasses.replace(card, cycle_model=older).cnn_limits is None  # a card of old
    assert dataclasses.replace(card, cycle_model={}).cnn_limits is None  # the CNN alone
