"""Why the CNN scored a recording as it did: occlusion by heart-cycle phase and by band.

Occlusion (Zeiler and Fergus, "Visualizing and understanding convolutional networks",
ECCV 2014) asks the model again with one part of its input hidden and measures how much the
score falls. Hidden here means set to the band's average level (0 after the front end's
per-band mean removal), so a hidden stretch carries no event. Two families of parts:

- the four phases of the heart cycle (S1, systole, S2, diastole), from the segmentation —
  murmurs live in systole or diastole, so this is the question a clinician asks;
- six frequency bands of the log-mel.

It runs through the LiteRT runner (no TensorFlow at runtime): ten masked copies of every
window, about 140 window inferences for a 30 s recording. The heart-cycle model's share of
a blended score is read from its own features (``cycle_features``), not occluded here.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

import utils
from auscult.analyzer import AnalysisResult, record_probability
from auscult.runner import ModelRunner
from config import Settings, get_settings

__all__ = ["PHASES", "Explanation", "explain"]

PHASES = ("S1", "systole", "S2", "diastole")
N_BANDS = 6
#: Half-widths (s) of the sound states around their centres (Springer et al.'s mean
#: durations: S1 122 ms, S2 94 ms).
_S1_HALF_S, _S2_HALF_S = 0.061, 0.047
#: A part whose hiding moves the score by less than this (raw probability) did not matter.
_NEGLIGIBLE = 0.02


@dataclass(frozen=True)
class Explanation:
    """How much the record score falls when each part of the input is hidden."""

    score: float  # the CNN's record score (mean window probability, before calibration)
    phase_drop: dict[str, float]  # phase → fall of the score when it is hidden (NaN: no cycles)
    band_edges_hz: tuple[tuple[float, float], ...]
    band_drop: tuple[float, ...]  # per band, the same

    @property
    def main_phase(self) -> str | None:
        """The phase whose hiding lowers the score most, if that matters at all."""
        known = {k: v for k, v in self.phase_drop.items() if np.isfinite(v)}
        if not known:
            return None
        phase = max(known, key=known.__getitem__)
        return phase if known[phase] >= _NEGLIGIBLE else None

    @property
    def main_band(self) -> tuple[float, float] | None:
        i = int(np.argmax(self.band_drop))
        return self.band_edges_hz[i] if self.band_drop[i] >= _NEGLIGIBLE else None

    def sentence(self, label: str) -> str:
        """Where the evidence for "abnormal" sits, in words a clinician reads."""
        phase, band = self.main_phase, self.main_band
        if phase is None and band is None:
            return "No part of the cycle and no band stands out in the model's score."
        parts = []
        if phase is not None:
            parts.append(f"sound in {phase}")
        if band is not None:
            parts.append(f"energy at {band[0]:.0f}–{band[1]:.0f} Hz")
        what = " and ".join(parts)
        if label == "normal":
            return f"The score stayed low; what raised it most was {what}."
        return f"What raised the score most: {what}."


def _band_edges(settings: Settings) -> list[tuple[int, int, float, float]]:
    """(first mel, last mel + 1, low Hz, high Hz) of each of N_BANDS groups of mel bands."""
    edges = utils.mel_band_edges(settings.n_mels, settings.mel_fmin, settings.mel_fmax)
    cuts = np.linspace(0, settings.n_mels, N_BANDS + 1).round().astype(int)
    return [(int(a), int(b), float(edges[a]), float(edges[b + 1])) for a, b in pairwise(cuts)]


def _phase_masks(result: AnalysisResult, n_frames: int, hop_s: float) -> dict[str, np.ndarray]:
    """Frame masks of the four phases from the S1/S2 centres."""
    t = np.arange(n_frames) * hop_s + hop_s / 2
    masks = {p: np.zeros(n_frames, dtype=bool) for p in PHASES}
    s1 = np.asarray(result.s1_times_s)
    s2 = np.asarray(result.s2_times_s)
    for c in s1:
        masks["S1"] |= np.abs(t - c) <= _S1_HALF_S
    for c in s2:
        masks["S2"] |= np.abs(t - c) <= _S2_HALF_S
    events = sorted([(c, "S1") for c in s1] + [(c, "S2") for c in s2])
    for (a, kind), (b, _) in pairwise(events):
        gap = "systole" if kind == "S1" else "diastole"
        start = a + (_S1_HALF_S if kind == "S1" else _S2_HALF_S)
        end = b - (_S2_HALF_S if kind == "S1" else _S1_HALF_S)
        masks[gap] |= (t > start) & (t < end)
    return masks


def explain(
    runner: ModelRunner, model_input: utils.ModelInput, result: AnalysisResult,
    settings: Settings | None = None,
) -> Explanation:  # fmt: skip
    """Occlude each phase and each band of the whole recording and re-score it."""
    s = settings or get_settings()
    features = model_input.features
    hop_s = s.hop_length / s.sample_rate
    score = record_probability(runner.predict(model_input.windows))
    masked: list[np.ndarray] = []
    names: list[str] = []
    # hidden = the band's quiet background (its 20th percentile over the recording)
    background = np.percentile(features, 20, axis=1, keepdims=True)
    if result.s1_times_s and not model_input.padded:
        for phase, mask in _phase_masks(result, features.shape[1], hop_s).items():
            names.append(phase)
            masked.append(np.where(mask[None, :], background, features))
    bands = _band_edges(s)
    for a, b, _, _ in bands:
        names.append(f"band{a}")
        hidden = features.copy()
        hidden[a:b] = background[a:b]
        masked.append(hidden)
    windows = [utils.cnn_windows(m, s)[0] for m in masked]
    counts = [len(w) for w in windows]
    probs = runner.predict(np.concatenate(windows))
    drops = {
        name: score - record_probability(p)
        for name, p in zip(names, np.split(probs, np.cumsum(counts)[:-1]), strict=True)
    }
    return Explanation(
        score=score,
        phase_drop={p: float(drops.get(p, np.nan)) for p in PHASES},
        band_edges_hz=tuple((lo, hi) for _, _, lo, hi in bands),
        band_drop=tuple(float(drops[f"band{a}"]) for a, _, _, _ in bands),
    )
