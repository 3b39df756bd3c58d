"""Training-time augmentation on cached dB log-mel features (see ``auscult/cache.py``).

What a new stethoscope or a phone changes, and how it is simulated here:
- frequency response (EQ, a phone's high-pass): a smooth random dB curve over the mel bands;
- ambient and broadband noise between the heart sounds: coloured noise added in the power
  domain at 0–20 dB SNR, as often to abnormal as to normal recordings, so that noise is no
  cue for either label;
- gain: irrelevant after per-band mean removal, except through the noise floor (covered);
- a phone's automatic gain control (slow gain riding) and limiter (loud beats squashed);
- heart rate and timing: a random time stretch and a random window position;
- SpecAugment-style band and time masks.
All functions take and return ``(n_mels, n_frames)`` float32 dB arrays and a numpy Generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "AugmentParams",
    "add_noise",
    "augment_record",
    "compress",
    "gain_riding",
    "mask",
    "random_eq",
    "time_stretch",
]


@dataclass(frozen=True)
class AugmentParams:
    eq_prob: float = 0.7
    eq_db: float = 12.0  # peak-to-peak of the random response
    highpass_prob: float = 0.25  # phone-like steep low-frequency cut
    noise_prob_normal: float = 0.5
    noise_prob_abnormal: float = 0.5
    snr_db: tuple[float, float] = (0.0, 20.0)
    agc_prob: float = 0.3  # a phone's automatic gain control
    agc_db: float = 8.0  # peak-to-peak of its slow gain riding
    compress_prob: float = 0.3  # a phone's limiter / dynamic range compression
    compress_ratio: tuple[float, float] = (2.0, 8.0)
    stretch: tuple[float, float] = (0.85, 1.15)
    band_masks: int = 2
    band_mask_width: int = 3
    time_masks: int = 2
    time_mask_width: int = 15


def random_eq(db: np.ndarray, rng: np.random.Generator, params: AugmentParams) -> np.ndarray:
    """Apply a smooth random frequency response, sometimes with a phone-like high-pass."""
    n = db.shape[0]
    knots = rng.uniform(-params.eq_db / 2, params.eq_db / 2, size=5)
    curve = np.interp(np.arange(n), np.linspace(0, n - 1, 5), knots)
    if rng.random() < params.highpass_prob:
        corner = rng.uniform(1, n / 4)
        curve = curve - 24.0 * np.clip((corner - np.arange(n)) / corner, 0, 1)
    return db + curve[:, None].astype(np.float32)


def add_noise(
    db: np.ndarray, rng: np.random.Generator, params: AugmentParams, top_db: float
) -> np.ndarray:
    """Add coloured, slowly fluctuating noise in the power domain at a random SNR."""
    n_mels, n_frames = db.shape
    power = np.power(10.0, db / 10.0, dtype=np.float64)
    colour = rng.uniform(-1.0, 2.0)  # 0 white, 1 pink, 2 brown
    shape = (np.arange(1, n_mels + 1) / n_mels) ** (-colour)
    shape *= np.power(
        10.0,
        np.interp(np.arange(n_mels), np.linspace(0, n_mels - 1, 4), rng.uniform(-4, 4, 4)) / 10,
    )
    snr = rng.uniform(*params.snr_db)
    shape *= power.mean() * n_mels / shape.sum() * 10 ** (-snr / 10)
    drift = np.power(10.0, np.cumsum(rng.normal(0, 0.15, n_frames)).clip(-4, 4) / 10)
    fluct = rng.gamma(4.0, 0.25, size=(n_mels, n_frames))
    noisy = 10.0 * np.log10(power + shape[:, None] * drift[None, :] * fluct + 1e-12)
    return np.maximum(noisy, noisy.max() - top_db).astype(np.float32)


def time_stretch(db: np.ndarray, rng: np.random.Generator, params: AugmentParams) -> np.ndarray:
    """Stretch or squeeze time (heart-rate change) by linear interpolation of frames."""
    factor = rng.uniform(*params.stretch)
    n = db.shape[1]
    m = max(2, round(n * factor))
    src = np.linspace(0, n - 1, m)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    frac = (src - lo).astype(np.float32)
    return db[:, lo] * (1 - frac) + db[:, hi] * frac


def gain_riding(db: np.ndarray, rng: np.random.Generator, params: AugmentParams) -> np.ndarray:
    """Slow random gain changes over time, as a phone's automatic gain control makes them.

    A smoothed random walk of ``agc_db`` peak-to-peak, one value per frame for every band
    (per-band mean removal cancels a fixed gain, not a moving one).
    """
    n_frames = db.shape[1]
    walk = np.cumsum(rng.normal(0.0, 1.0, n_frames))
    width = min(n_frames, 50)  # ~1 s at 50 frames/s: AGC reacts over about a second
    walk = np.convolve(walk, np.ones(width) / width, mode="same")
    span = np.ptp(walk)
    curve = (walk - walk.mean()) * (params.agc_db / span if span > 0 else 0.0)
    return db + curve[None, :].astype(np.float32)


def compress(db: np.ndarray, rng: np.random.Generator, params: AugmentParams) -> np.ndarray:
    """Squash loud frames above a random threshold by a random ratio (a phone's limiter).

    The threshold sits at the 50th–85th percentile of frame level, so S1/S2 peaks lose
    height against the murmur and noise between them, as in a compressed phone recording.
    """
    level = 10.0 * np.log10(np.power(10.0, db / 10.0, dtype=np.float64).sum(axis=0) + 1e-12)
    threshold = np.percentile(level, rng.uniform(50.0, 85.0))
    ratio = rng.uniform(*params.compress_ratio)
    reduction = (1.0 - 1.0 / ratio) * np.maximum(level - threshold, 0.0)
    # release over ~3 frames (60 ms): a limiter recovers quickly but not instantly
    reduction = np.maximum.reduce([np.roll(reduction, k) for k in range(3)])
    return (db - reduction[None, :]).astype(np.float32)


def mask(x: np.ndarray, rng: np.random.Generator, params: AugmentParams) -> np.ndarray:
    """SpecAugment masks on a normalised window (masked cells set to 0, the band mean)."""
    x = x.copy()
    n_mels, n_frames = x.shape
    for _ in range(rng.integers(0, params.band_masks + 1)):
        w = rng.integers(1, params.band_mask_width + 1)
        f0 = rng.integers(0, n_mels - w + 1)
        x[f0 : f0 + w] = 0.0
    for _ in range(rng.integers(0, params.time_masks + 1)):
        w = rng.integers(1, params.time_mask_width + 1)
        t0 = rng.integers(0, n_frames - w + 1)
        x[:, t0 : t0 + w] = 0.0
    return x


def augment_record(
    db: np.ndarray, label: int, rng: np.random.Generator, params: AugmentParams, top_db: float
) -> np.ndarray:
    """One random device/room/heart-rate variant of a whole record's dB log-mel."""
    out = time_stretch(db, rng, params)
    if rng.random() < params.eq_prob:
        out = random_eq(out, rng, params)
    if rng.random() < params.agc_prob:
        out = gain_riding(out, rng, params)
    noise_prob = params.noise_prob_abnormal if label else params.noise_prob_normal
    if rng.random() < noise_prob:
        out = add_noise(out, rng, params, top_db)
    if rng.random() < params.compress_prob:  # after the noise: the phone compresses both
        out = compress(out, rng, params)
    return out
