"""What each beat is: AAMI classes N, S, V, F from the beat's shape and its RR context.

The model (``scripts/ecg_train.py``; Keras for training, LiteRT at runtime) sees 0.25 s
before to 0.46 s after the R peak at 180 Hz, scaled by the record's typical QRS height, and
six RR features: the previous and next interval against the local (±10 beats) and the
record's (±150 beats) mean — prematurity is what tells a supraventricular beat from a normal
one (de Chazal et al., IEEE TBME 2004). Decisions are recall-first: V, F and paced above
thresholds chosen on out-of-fold scores of the training records; S when a beat not called V,
F or paced comes early against the record's mean RR (a threshold chosen on DS1); everything
else is N. A fifth class learns paced beats from the four paced records (outside DS1 and
DS2); they are reported as Q, as are beats in stretches too poor to judge.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from auscult.errors import ModelNotFoundError
from auscult.filters import zero_phase
from config import Settings, get_settings

__all__ = [
    "AAMI",
    "CLASSES",
    "BeatModel",
    "beat_inputs",
    "decide",
    "rr_features",
]

#: The model's classes: the four AAMI beat classes and paced beats ("P", reported as Q).
CLASSES = ("N", "S", "V", "F", "P")
#: MIT-BIH beat symbols → AAMI EC57 classes (Q: paced, fusion of paced, unclassifiable).
AAMI = {
    **dict.fromkeys("NLRejB", "N"),
    **dict.fromkeys("AaJSn", "S"),
    **dict.fromkeys("VE", "V"),
    "F": "F",
    **dict.fromkeys("/fQ?", "Q"),
}
BEFORE_S, AFTER_S = 0.25, 0.46
WAVE_RATE = 180  # Hz, the model's view of the beat
WAVE_LEN = 128
CHANNELS = 1  # the beat (a second channel, the beat minus the patient's median beat, was
#              tried and not kept: see models/experiments.md)


def filtered(lead: np.ndarray, rate: int) -> np.ndarray:
    """0.5–40 Hz band: no baseline wander, no powerline, no muscle hiss."""
    return zero_phase(2, (0.5, 40.0), "bandpass", rate)(lead)


def rr_features(peaks: np.ndarray, rate: int) -> np.ndarray:
    """``(n, 6)``: previous/next RR over the local and record mean, local/record, raw RRs (s)."""
    n = len(peaks)
    if n < 2:
        return np.ones((n, 6), dtype=np.float32)
    rr = np.diff(peaks) / rate
    pre = np.concatenate([[rr[0]], rr])
    post = np.concatenate([rr, [rr[-1]]])

    def moving_mean(k: int) -> np.ndarray:
        c = np.concatenate([[0.0], np.cumsum(pre)])
        lo = np.clip(np.arange(n) - k, 0, n)
        hi = np.clip(np.arange(n) + k + 1, 0, n)
        return (c[hi] - c[lo]) / (hi - lo)

    local, record = moving_mean(10), moving_mean(150)
    return np.stack(
        [pre / local, post / local, pre / record, local / record, pre, post], axis=1
    ).astype(np.float32)


def beat_inputs(lead: np.ndarray, rate: int, peaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs of every beat: waves ``(n, WAVE_LEN, CHANNELS)`` and RR features ``(n, 6)``."""
    x = filtered(lead, rate)
    step = rate / WAVE_RATE
    offsets = np.round((np.arange(WAVE_LEN) - BEFORE_S * WAVE_RATE) * step).astype(np.int64)
    idx = np.clip(np.asarray(peaks)[:, None] + offsets[None, :], 0, len(x) - 1)
    waves = x[idx]
    waves -= np.median(waves, axis=1, keepdims=True)
    half = int(0.06 * rate)
    around = np.clip(
        np.asarray(peaks)[:, None] + np.arange(-half, half + 1)[None, :], 0, len(x) - 1
    )
    heights = np.ptp(x[around], axis=1)
    scale = float(np.median(heights)) if len(heights) else 1.0
    waves /= max(scale, 1e-3)
    return waves[:, :, None].astype(np.float32), rr_features(np.asarray(peaks), rate)


def decide(probs: np.ndarray, thresholds: dict[str, float], rr: np.ndarray) -> np.ndarray:
    """Class index per beat, recall-first. V, F and P from the model above their thresholds
    (V wins); S is a beat the model does not call V, F or P that comes early: its previous
    RR under ``thresholds["S_premature"]`` of the record's mean RR (rr column 2). The model's
    own S score is not used: out of fold it did not carry across patients, prematurity did
    (models/experiments.md)."""
    out = np.zeros(len(probs), dtype=np.int64)
    early = np.asarray(rr)[:, 2] < thresholds["S_premature"] if len(out) else np.zeros(0, bool)
    out[early] = CLASSES.index("S")
    for name in ("P", "F", "V"):  # later ones win
        k = CLASSES.index(name)
        out[probs[:, k] >= thresholds[name]] = k
    return out


@dataclass
class BeatModel:
    """The committed beat classifier (LiteRT) and its card (thresholds, training facts)."""

    path: Path
    card: dict
    threads: int = 2

    def __post_init__(self) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_path=str(self.path), num_threads=self.threads)
        self._lock = threading.Lock()
        inputs = self._interpreter.get_input_details()
        self._wave = next(d for d in inputs if len(d["shape"]) == 3)
        self._rr = next(d for d in inputs if d is not self._wave)
        self._out = self._interpreter.get_output_details()[0]["index"]
        self._batch = 0

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> BeatModel:
        s = settings or get_settings()
        if not s.ecg_model_path.exists() or not s.ecg_card_path.exists():
            raise ModelNotFoundError(
                f"the ECG beat model is missing ({s.ecg_model_path.name}); train it with "
                "`python scripts/ecg_train.py`"
            )
        card = json.loads(s.ecg_card_path.read_text())
        return cls(s.ecg_model_path, card, s.inference_threads)

    @property
    def thresholds(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.card["thresholds"].items()}

    @property
    def version(self) -> str:
        return str(self.card.get("version", "unknown"))

    def predict(self, waves: np.ndarray, rr: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, 5)`` in :data:`CLASSES` order."""
        n = len(waves)
        if n == 0:
            return np.zeros((0, len(CLASSES)), dtype=np.float32)
        it = self._interpreter
        with self._lock:
            if self._batch != n:
                it.resize_tensor_input(self._wave["index"], [n, WAVE_LEN, CHANNELS])
                it.resize_tensor_input(self._rr["index"], [n, rr.shape[1]])
                it.allocate_tensors()
                self._batch = n
            it.set_tensor(self._wave["index"], waves.astype(np.float32))
            it.set_tensor(self._rr["index"], rr.astype(np.float32))
            it.invoke()
            return it.get_tensor(self._out).copy()
