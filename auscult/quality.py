"""Recording quality and heart rate from the heart-sound envelope.

A heart-sound recording worth judging has a regular beat: its energy envelope repeats once
per cardiac cycle. The height of the envelope's autocorrelation peak in the heart-rate range
measures that regularity (0 = no rhythm, 1 = perfectly periodic); the peak's lag gives the
heart rate. Noise, speech, rubbing and an unplaced microphone have no such peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

__all__ = ["Quality", "assess_quality", "envelope"]

ENVELOPE_RATE = 50  # Hz
MIN_BPM, MAX_BPM = 35.0, 200.0


@dataclass(frozen=True)
class Quality:
    """How judgeable a recording is."""

    score: float  # 0–1, higher is better
    periodicity: float  # autocorrelation peak of the envelope in the heart-rate range
    heart_rate_bpm: float | None  # None when no regular beat was found
    clip_fraction: float


def envelope(x: np.ndarray, rate: int) -> np.ndarray:
    """Homomorphic envelope of a band-limited heart-sound signal, sampled at 50 Hz."""
    sos = sps.butter(2, [25.0, 400.0], btype="bandpass", fs=rate, output="sos")
    band = sps.sosfilt(sos, x)
    step = rate // ENVELOPE_RATE
    n = len(band) // step
    frames = np.abs(band[: n * step]).reshape(n, step).mean(axis=1)
    env = np.log(frames + 1e-6 * (frames.max() + 1e-12))
    env = sps.sosfiltfilt(sps.butter(2, 8.0, fs=ENVELOPE_RATE, output="sos"), env) if n > 15 else env
    return env - env.mean()


def assess_quality(x: np.ndarray, rate: int, clip_fraction: float = 0.0) -> Quality:
    """Score a prepared signal (see ``utils.prepare_signal``) for periodicity and clipping."""
    env = envelope(np.asarray(x, dtype=np.float64), rate)
    lo = int(ENVELOPE_RATE * 60.0 / MAX_BPM)
    hi = min(int(ENVELOPE_RATE * 60.0 / MIN_BPM), len(env) // 2)
    periodicity, bpm = 0.0, None
    if hi > lo and np.any(env):
        ac = np.correlate(env, env, mode="full")[len(env) - 1 :]
        ac = ac / (ac[0] * (len(env) - np.arange(len(ac))) / len(env))  # unbiased, 1 at lag 0
        lag = lo + int(np.argmax(ac[lo:hi]))
        periodicity = float(np.clip(ac[lag], 0.0, 1.0))
        if periodicity > 0.2:
            bpm = 60.0 * ENVELOPE_RATE / lag
    score = periodicity * (1.0 - min(1.0, 2.0 * clip_fraction))
    return Quality(score=score, periodicity=periodicity, heart_rate_bpm=bpm, clip_fraction=clip_fraction)
