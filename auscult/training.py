"""Training and record-level evaluation of the CNN on cached features.

Every record is cut into model windows by the same ``utils.normalise_bands`` and
``utils.frame_windows`` the analyzer uses; the record probability is
``analyzer.record_probability`` of its windows. TensorFlow/Keras are imported inside the
functions that need them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import utils
from auscult.analyzer import blend_scores, record_probability
from auscult.augment import AugmentParams, augment_record, mask
from auscult.cache import CachedRecord
from auscult.calibration import BorderlineBand, Calibration, choose_band, fit_platt, logit
from auscult.metrics import choose_threshold
from auscult.model import ModelParams, build_model
from config import Settings, get_settings

__all__ = [
    "DecisionRule",
    "TrainConfig",
    "TrainOutcome",
    "TrainingCancelled",
    "blended_decision",
    "cnn_logit_limits",
    "export_model",
    "fit_decision",
    "record_scores",
    "train_model",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run."""

    seed: int = 42
    epochs: int = 24
    patience: int = 8
    batch_size: int = 64
    crops_per_record: int = 4
    learning_rate: float = 3e-3
    min_sensitivity: float = 0.9  # threshold rule, see metrics.choose_threshold
    #: Total weight of each database: "size" keeps its share of records, "sqrt" gives it
    #: the square root of its size (training-e holds 66 % of the records, c under 1 %).
    database_weight: str = "sqrt"
    #: Share of validation records (nearest the threshold) the borderline band holds.
    borderline_share: float = 0.1
    #: Mixup across databases (Zhang et al. 2018, "mixup: beyond empirical risk
    #: minimization"): this share of windows is blended with a window of *another* database,
    #: weight ~ Beta(alpha, alpha), labels blended alike. 0 switches it off.
    mixup_share: float = 0.0
    mixup_alpha: float = 0.4
    #: Domain-adversarial training (Ganin et al. 2016, "Domain-adversarial training of neural
    #: networks"): a head guesses the database from the pooled features through a gradient
    #: reversal layer, so the features learn to hide the device. Its loss weight; 0 is off.
    adversarial_weight: float = 0.0
    #: Share of the heart-cycle model's logit in the record score (auscult.cycle_features;
    #: 0 is the CNN alone) and its L2 strength (scikit-learn's C).
    cycle_weight: float = 0.5
    cycle_c: float = 0.3
    #: Share of the validation records' CNN logits left beyond each end of the range the
    #: CNN's logit is held to in the blend (0.1: their 10th to 90th percentile; 0: free).
    cnn_limit_share: float = 0.1
    model: ModelParams = field(default_factory=ModelParams)
    augment: AugmentParams = field(default_factory=AugmentParams)
    augment_enabled: bool = True


class TrainingCancelled(Exception):
    """``on_epoch`` asked the training to stop."""


@dataclass
class TrainOutcome:
    model: Any  # keras.Model with the best validation weights restored
    epochs_run: int
    best_epoch: int
    seconds: float
    history: dict[str, list[float]]


@dataclass(frozen=True)
class DecisionRule:
    """How raw record scores become an answer: calibration, threshold, borderline band."""

    calibration: Calibration
    threshold: float  # on the calibrated probability
    band: BorderlineBand


def fit_decision(val_raw: np.ndarray, val_labels: np.ndarray, cfg: TrainConfig) -> DecisionRule:
    """Calibrate, choose the threshold and the borderline band on validation records only."""
    calibration = fit_platt(val_raw, val_labels)
    calibrated = calibration(val_raw)
    threshold = choose_threshold(val_labels, calibrated, cfg.min_sensitivity)
    return DecisionRule(
        calibration, threshold, choose_band(calibrated, threshold, cfg.borderline_share)
    )


def cnn_logit_limits(val_cnn_raw: np.ndarray, cfg: TrainConfig) -> tuple[float, float] | None:
    """The range the CNN's logit is held to in the blend (``analyzer.blend_scores``): the
    middle of its validation records' logits. None when the recipe leaves it free or has
    no heart-cycle model to blend with."""
    if cfg.cnn_limit_share <= 0 or cfg.cycle_weight <= 0:
        return None
    share = 100.0 * cfg.cnn_limit_share
    lo, hi = np.percentile(logit(np.asarray(val_cnn_raw)), [share, 100.0 - share])
    return round(float(lo), 4), round(float(hi), 4)


def blended_decision(
    val_cnn_raw: np.ndarray, val_cycle_logit: np.ndarray, val_labels: np.ndarray, cfg: TrainConfig
) -> tuple[tuple[float, float] | None, DecisionRule]:
    """The CNN's logit limits and the decision rule fitted on the validation records'
    blended scores, as ``make train`` fits them for a CNN and its heart-cycle model."""
    limits = cnn_logit_limits(val_cnn_raw, cfg)
    raw = blend_scores(val_cnn_raw, val_cycle_logit, cfg.cycle_weight, limits)
    return limits, fit_decision(raw, val_labels, cfg)


def record_windows(db: np.ndarray, settings: Settings) -> np.ndarray:
    """Inference windows of one cached record: the analyzer's own path from dB log-mel."""
    return utils.cnn_windows(utils.normalise_bands(db), settings)[0]


def record_scores(
    predict: Callable[[np.ndarray], np.ndarray],
    records: Sequence[CachedRecord],
    settings: Settings | None = None,
    batch: int = 2048,
) -> np.ndarray:
    """Record-level probabilities: every window of every record, averaged per record."""
    s = settings or get_settings()
    windows = [record_windows(c.features, s) for c in records]
    counts = np.array([len(w) for w in windows])
    stacked = np.concatenate(windows)
    probs = np.concatenate([predict(stacked[i : i + batch]) for i in range(0, len(stacked), batch)])
    bounds = np.cumsum(counts)[:-1]
    return np.array([record_probability(p) for p in np.split(probs, bounds)])


def _random_crop(x: np.ndarray, width: int, rng: np.random.Generator) -> np.ndarray:
    if x.shape[1] < width:
        x = np.pad(x, ((0, 0), (0, width - x.shape[1])), mode="wrap")
    start = rng.integers(0, x.shape[1] - width + 1)
    return x[:, start : start + width]


def sample_epoch(
    records: Sequence[CachedRecord], cfg: TrainConfig, settings: Settings, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training windows for one epoch: ``crops_per_record`` crops of one augmented variant each.

    Returns windows, labels, loss weights and the index of each window's database (in the
    sorted list of the records' databases).
    """
    width = settings.window_frames
    xs, ys, ws, dbs = [], [], [], []
    for c, weight in zip(records, record_weights(records, cfg.database_weight), strict=False):
        label = c.record.label
        db = c.features
        if cfg.augment_enabled:  # one device/room variant of the record per epoch
            db = augment_record(db, label, rng, cfg.augment, settings.top_db)
        features = utils.coarse_bands(utils.normalise_bands(db), settings.band_group)
        for _ in range(cfg.crops_per_record):
            window = _random_crop(features, width, rng)
            if cfg.augment_enabled:
                window = mask(window, rng, cfg.augment)
            xs.append(window)
            ys.append(label)
            ws.append(weight)
            dbs.append(c.record.database)
    order = rng.permutation(len(xs))
    x, y = np.stack(xs)[order].astype(np.float32), np.asarray(ys, np.float32)[order]
    databases = np.asarray(dbs)[order]
    if cfg.mixup_share > 0:
        x, y = mix_across_databases(x, y, databases, cfg, rng)
    index = np.searchsorted(np.unique(databases), databases)
    return x[..., None], y, np.asarray(ws, np.float32)[order], index


def mix_across_databases(
    x: np.ndarray, y: np.ndarray, dbs: np.ndarray, cfg: TrainConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Blend ``mixup_share`` of the windows with a random window from a different database."""
    x, y = x.copy(), y.copy()
    chosen = np.flatnonzero(rng.random(len(x)) < cfg.mixup_share)
    for i in chosen:
        others = np.flatnonzero(dbs != dbs[i])
        if len(others) == 0:
            continue
        j = rng.choice(others)
        lam = rng.beta(cfg.mixup_alpha, cfg.mixup_alpha)
        lam = max(lam, 1 - lam)  # the window keeps its own identity (and sample weight)
        x[i] = lam * x[i] + (1 - lam) * x[j]
        y[i] = lam * y[i] + (1 - lam) * y[j]
    return x, y


def record_weights(records: Sequence[CachedRecord], database_weight: str = "size") -> np.ndarray:
    """Per-record loss weights that balance the labels *within each database*.

    In PhysioNet 2016 the share of abnormal recordings differs from one database to the
    next (71 % in training-a, 9 % in training-e), so a model can score well by recognising
    the database instead of the heart sound. Giving each label half of its database's weight
    removes that shortcut. Each database's total weight is its record count (``"size"``) or
    its square root (``"sqrt"``: the large databases still count more, but one device cannot
    dominate what the model learns). Mean weight is 1.
    """
    if database_weight not in {"size", "sqrt"}:
        raise ValueError(f"database_weight {database_weight!r} is not 'size' or 'sqrt'")
    keys = [(c.record.database, c.record.label) for c in records]
    per_key = {k: keys.count(k) for k in set(keys)}
    per_db = {db: sum(n for (d, _), n in per_key.items() if d == db) for db, _ in per_key}
    total = {db: (n if database_weight == "size" else np.sqrt(n)) for db, n in per_db.items()}
    labels_in_db = {db: sum(1 for d, _ in per_key if d == db) for db in per_db}
    w = np.array([total[db] / (labels_in_db[db] * per_key[(db, label)]) for db, label in keys])
    return w / w.mean()


def configure_devices() -> str:
    """Use the GPU with mixed precision when there is one; say which device trains.

    Under another Keras backend (``KERAS_BACKEND=jax``, for experiments on a machine without
    TensorFlow) that backend places the work itself.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return f"{keras.backend.backend()} backend"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
        keras.mixed_precision.set_global_policy("mixed_float16")
        return f"GPU ×{len(gpus)} (mixed precision)"
    return "CPU"


def train_model(
    train: Sequence[CachedRecord],
    val: Sequence[CachedRecord],
    cfg: TrainConfig,
    settings: Settings | None = None,
    log_dir: Path | None = None,
    verbose: int = 1,
    initial_weights: list[Any] | None = None,
    on_epoch: Callable[[int, float], bool] | None = None,
) -> TrainOutcome:
    """Train with database-balanced weights and augmentation; stop early on validation AUC.

    ``initial_weights`` (a model's ``get_weights()``) fine-tunes instead of starting afresh;
    ``on_epoch(epoch, validation AUC)`` is called after every epoch and stops the training
    when it returns False (a cancelled job keeps nothing it trained).
    """
    import keras
    from tqdm.auto import tqdm

    from auscult.metrics import roc_auc

    s = settings or get_settings()
    keras.utils.set_random_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_model(s.n_mels, s.window_frames, cfg.model)
    if initial_weights is not None:
        model.set_weights(initial_weights)
    steps = math.ceil(len(train) * cfg.crops_per_record / cfg.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate, decay_steps=steps * cfg.epochs, alpha=0.05
    )
    n_databases = len({c.record.database for c in train})
    trainer = (
        adversarial_trainer(model, n_databases, cfg.adversarial_weight)
        if cfg.adversarial_weight > 0
        else model
    )
    trainer.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="binary_crossentropy"
        if trainer is model
        else {"abnormal": "binary_crossentropy", "database": "sparse_categorical_crossentropy"},
        loss_weights=None if trainer is model else {"abnormal": 1.0, "database": 1.0},
        metrics=[keras.metrics.AUC(name="window_auc")]
        if trainer is model
        else {"abnormal": [keras.metrics.AUC(name="window_auc")]},
    )
    val_labels = np.array([c.record.label for c in val])
    callbacks: list[Any] = []
    if log_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False))

    best_auc, best_epoch, best_weights = -1.0, 0, model.get_weights()
    if initial_weights is not None:  # fine-tuning must beat where it started
        start = record_scores(
            lambda w: model.predict(w[..., None], verbose=0, batch_size=1024).ravel(), val, s
        )
        best_auc, best_epoch = roc_auc(val_labels, start), -1
    history: dict[str, list[float]] = {"loss": [], "window_auc": [], "val_record_auc": []}
    started = time.perf_counter()
    epoch = 0
    bar = tqdm(range(cfg.epochs), desc="epochs", unit="ep", disable=verbose == 0)
    # The next epoch's windows are drawn while this one trains (numpy beside TensorFlow's
    # kernels). One thread draws every epoch in turn, so the random stream is unchanged.
    sampler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sample-epoch")
    upcoming = sampler.submit(sample_epoch, train, cfg, s, rng)
    try:
        for epoch in bar:
            x, y, w, d = upcoming.result()
            if epoch + 1 < cfg.epochs:
                upcoming = sampler.submit(sample_epoch, train, cfg, s, rng)
            if trainer is not model:  # the database head learns from every window alike
                y = {"abnormal": y, "database": d}
                w = {"abnormal": w, "database": np.ones_like(w)}
            fit = trainer.fit(
                x, y, sample_weight=w, batch_size=cfg.batch_size, epochs=epoch + 1,
                initial_epoch=epoch, verbose=0, callbacks=callbacks,
            )  # fmt: skip
            scores = record_scores(
                lambda w: model.predict(w[..., None], verbose=0, batch_size=1024).ravel(), val, s
            )
            val_auc = roc_auc(val_labels, scores)
            history["loss"].append(float(fit.history["loss"][-1]))
            auc_key = next(k for k in fit.history if k.endswith("window_auc"))
            history["window_auc"].append(float(fit.history[auc_key][-1]))
            history["val_record_auc"].append(float(val_auc))
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}", val_auc=f"{val_auc:.3f}")
            if on_epoch is not None and not on_epoch(epoch, float(val_auc)):
                raise TrainingCancelled(f"stopped after epoch {epoch + 1}")
            if val_auc > best_auc:
                best_auc, best_epoch, best_weights = val_auc, epoch, model.get_weights()
            elif epoch - best_epoch >= cfg.patience:
                log.info(
                    "early stop at epoch %d; best validation AUC %.4f at epoch %d",
                    epoch + 1,
                    best_auc,
                    best_epoch + 1,
                )
                break
    finally:
        sampler.shutdown(cancel_futures=True)
    model.set_weights(best_weights)  # restore the best validation weights
    return TrainOutcome(
        model=model,
        epochs_run=epoch + 1,
        best_epoch=best_epoch + 1,
        seconds=time.perf_counter() - started,
        history=history,
    )


def adversarial_trainer(model: Any, n_databases: int, weight: float) -> Any:
    """A training-only model: ``model``'s output plus a database head behind gradient reversal.

    The head shares every layer up to the pooled features with ``model``, so training it
    trains ``model``; only ``model`` is exported.
    """
    import keras
    import tensorflow as tf
    from keras import layers

    class GradientReversal(layers.Layer):
        """Identity forward; the gradient backward is multiplied by ``-weight``."""

        def call(self, x):
            @tf.custom_gradient
            def reverse(t):
                return tf.identity(t), lambda dy: -weight * dy

            return reverse(x)

    features = model.get_layer("gap").output
    h = GradientReversal(name="reverse_gradient")(features)
    h = layers.Dense(32, activation="relu", name="db_hidden")(h)
    database = layers.Dense(n_databases, activation="softmax", name="database")(h)
    return keras.Model(model.input, {"abnormal": model.output, "database": database})


def export_model(model: Any, out_dir: Path, name: str) -> dict[str, Path]:
    """Save ``<name>.keras`` and a float32 ``<name>.tflite`` (LiteRT) into ``out_dir``."""

    out_dir.mkdir(parents=True, exist_ok=True)
    keras_path = out_dir / f"{name}.keras"
    tflite_path = out_dir / f"{name}.tflite"
    model.save(keras_path)
    model.export(str(tflite_path), format="litert", verbose=False)
    return {"keras": keras_path, "tflite": tflite_path}
