"""One ECG in, one answer out: beats, their classes, the rhythm, and how sure it all is.

The path every door uses (desktop page, REST API, batch CLI, evaluation):
:func:`~auscult.ecg.reading.load_ecg` → signal quality per 10 s stretch → beats
(:mod:`auscult.ecg.beats`) → classes (:mod:`auscult.ecg.classify`) → rhythm
(:mod:`auscult.ecg.rhythm`). Stretches too poor to read are "unsure" and their beats are Q:
a noisy stretch is reported, never guessed.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from auscult.ecg.beats import detect_beats
from auscult.ecg.classify import CLASSES, BeatModel, beat_inputs, decide
from auscult.ecg.reading import EcgRecording, pick_lead
from auscult.ecg.rhythm import Rhythm, read_rhythm
from auscult.filters import zero_phase
from config import Settings, get_settings

__all__ = ["Beats", "EcgAnalysis", "EcgAnalyzer", "explain_beat", "stretch_quality"]

STRETCH_S = 10.0
#: Share of readable stretches below which the whole record is "unsure".
MIN_JUDGED = 0.5
DISCLAIMER = "Decision support, not a diagnosis: a clinician reads the ECG."


def stretch_quality(
    lead: np.ndarray, rate: int, peaks: np.ndarray
) -> list[tuple[float, float, str]]:
    """Unreadable stretches ``(start_s, end_s, why)``: flat line / lead off, saturation,
    noise (more power above 40 Hz than in the QRS band), or no plausible beats."""
    bad = []
    n = int(STRETCH_S * rate)
    x = zero_phase(2, 0.5, "highpass", rate)(lead)
    hf = zero_phase(2, 40.0, "highpass", rate)(x)
    qrs = zero_phase(2, (5.0, 25.0), "bandpass", rate)(x)
    raw = lead.astype(np.float64)
    t = np.asarray(peaks) / rate
    for start in range(0, len(x), n):
        end = min(len(x), start + n)
        if end - start < rate:  # a tail under 1 s joins no judgement
            continue
        s0, s1 = start / rate, end / rate
        rails = np.mean((raw[start:end] >= raw.max() - 1e-6) | (raw[start:end] <= raw.min() + 1e-6))
        beats = np.sum((t >= s0) & (t < s1))
        bpm = 60.0 * beats / (s1 - s0)
        spread = np.percentile(raw[start:end], 98) - np.percentile(raw[start:end], 2)
        if spread < 0.05:
            bad.append((s0, s1, "flat line — a lead may be off"))
        elif rails > 0.05:
            bad.append((s0, s1, "signal saturated"))
        elif np.std(hf[start:end]) > 0.8 * np.std(qrs[start:end]):
            bad.append((s0, s1, "too noisy (muscle or electrical noise)"))
        elif not 20 <= bpm <= 300:
            bad.append((s0, s1, "no plausible heartbeat found"))
    return bad


def explain_beat(model: BeatModel, wave: np.ndarray, rr: np.ndarray, k: int) -> np.ndarray:
    """Occlusion: how much class ``k``'s probability drops when each ~45 ms of the beat
    (``(WAVE_LEN, CHANNELS)``) is flattened (0–1 per sample)."""
    width = 8
    starts = np.arange(0, len(wave), width // 2)
    masked = np.repeat(wave[None], len(starts), axis=0)
    for i, s in enumerate(starts):
        masked[i, s : s + width] = 0.0  # every channel
    base = model.predict(wave[None], rr[None, :])[0, k]
    probs = model.predict(masked, np.repeat(rr[None, :], len(starts), axis=0))[:, k]
    drop = np.maximum(base - probs, 0.0)
    weight = np.zeros(len(wave))
    count = np.zeros(len(wave))
    for s, d in zip(starts, drop, strict=True):
        weight[s : s + width] += d
        count[s : s + width] += 1
    weight /= np.maximum(count, 1)
    return weight / max(float(weight.max()), 1e-9)


@dataclass(frozen=True)
class Beats:
    """One lead's beats: R peaks (samples), model probabilities, decided classes."""

    lead: int
    peaks: np.ndarray
    probs: np.ndarray  # (n, len(CLASSES))
    rr: np.ndarray  # (n, 6) RR features (classify.rr_features)
    classes: np.ndarray  # "N", "S", "V", "F", "Q" (paced and unreadable beats are Q)
    chosen: np.ndarray  # probability of the class given
    judged: np.ndarray  # in a readable stretch
    paced: np.ndarray  # the model calls it paced
    unsure: list[tuple[float, float, str]]


@dataclass
class EcgAnalysis:
    """Everything the doors show; :meth:`to_dict` is the JSON the API and history store."""

    duration_s: float
    leads: tuple[str, ...]
    lead: str
    source_rate: float
    beat_times_s: np.ndarray
    beat_classes: np.ndarray  # "N", "S", "V", "F", "Q" per beat
    beat_probabilities: np.ndarray  # probability of the class given
    unsure_stretches: list[tuple[float, float, str]]
    rhythm: Rhythm
    label: str  # "normal", "abnormal" or "unsure"
    quality: float  # share of the record readable
    reason: str
    warnings: tuple[str, ...]
    model_version: str
    elapsed_ms: float

    def to_dict(self, beats: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "modality": "ecg",
            "label": self.label,
            "reason": self.reason,
            "quality": round(self.quality, 3),
            "duration_s": round(self.duration_s, 2),
            "leads": list(self.leads),
            "lead": self.lead,
            "source_rate_hz": self.source_rate,
            **self.rhythm.as_dict(),
            "beat_counts": {
                c: int(np.sum(self.beat_classes == c)) for c in ("N", "S", "V", "F", "Q")
            },
            "unsure_stretches": [
                {"start_s": round(a, 2), "end_s": round(b, 2), "why": w}
                for a, b, w in self.unsure_stretches
            ],
            "warnings": list(self.warnings),
            "model_version": self.model_version,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "disclaimer": DISCLAIMER,
        }
        if beats:
            out["beats"] = [
                {"time_s": round(float(t), 3), "class": str(c), "probability": round(float(p), 3)}
                for t, c, p in zip(
                    self.beat_times_s, self.beat_classes, self.beat_probabilities, strict=True
                )
            ]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EcgAnalysis:
        """Rebuild a stored analysis (``to_dict`` with beats) to draw it again."""
        beats = data.get("beats", [])
        return cls(
            duration_s=float(data["duration_s"]),
            leads=tuple(data["leads"]),
            lead=str(data["lead"]),
            source_rate=float(data["source_rate_hz"]),
            beat_times_s=np.array([b["time_s"] for b in beats], dtype=np.float64),
            beat_classes=np.array([b["class"] for b in beats], dtype="<U1"),
            beat_probabilities=np.array([b["probability"] for b in beats], dtype=np.float64),
            unsure_stretches=[
                (u["start_s"], u["end_s"], u["why"]) for u in data["unsure_stretches"]
            ],
            rhythm=Rhythm.from_dict(data),
            label=str(data["label"]),
            quality=float(data["quality"]),
            reason=str(data["reason"]),
            warnings=tuple(data.get("warnings", ())),
            model_version=str(data.get("model_version", "")),
            elapsed_ms=float(data.get("elapsed_ms", 0.0)),
        )


def _label(rhythm: Rhythm, quality: float) -> tuple[str, str]:
    if quality < MIN_JUDGED or rhythm.rhythm == "unsure":
        return (
            "unsure",
            "too little of the ECG is readable to judge — record again with good electrode contact",
        )
    if rhythm.findings:
        return "abnormal", "; ".join(rhythm.findings)
    return "normal", "sinus rhythm, no ectopic beats, pauses or rate problems found"


class EcgAnalyzer:
    """Loads the beat model once; :meth:`analyze` is thread-safe."""

    def __init__(self, model: BeatModel | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._model = model
        self._lock = threading.Lock()

    @property
    def model(self) -> BeatModel:
        with self._lock:
            if self._model is None:
                self._model = BeatModel.from_settings(self.settings)
            return self._model

    def beats(self, recording: EcgRecording, lead: str | int | None = None) -> Beats:
        """Peaks, classes and probabilities of one lead, plus its unreadable stretches."""
        index = pick_lead(recording.leads, lead)
        x = recording.lead(index)
        rate = recording.rate
        peaks = detect_beats(recording.signal, rate, index)
        waves, rr = beat_inputs(x, rate, peaks)
        probs = self.model.predict(waves, rr)
        picked = decide(probs, self.model.thresholds, rr)
        classes = (
            np.array([CLASSES[k] for k in picked]) if len(picked) else np.array([], dtype="<U1")
        )
        chosen = probs[np.arange(len(picked)), picked] if len(picked) else np.zeros(0)
        early = picked == CLASSES.index("S")  # called by prematurity: its chance of not N
        chosen = np.where(early, 1.0 - probs[:, 0], chosen) if len(picked) else chosen
        classes = np.where(classes == "P", "Q", classes)  # paced beats are AAMI Q
        bad = stretch_quality(x, rate, peaks)
        t = peaks / rate
        judged = np.ones(len(peaks), dtype=bool)
        for a, b, _ in bad:
            judged &= ~((t >= a) & (t < b))
        paced = picked == CLASSES.index("P")
        classes = np.where(judged, classes, "Q")
        return Beats(index, peaks, probs, rr, classes, chosen, judged, paced, bad)

    def read(self, recording: EcgRecording, lead: str | int | None = None) -> tuple[Beats, Rhythm]:
        """Beats and rhythm. Inside atrial fibrillation an early beat is the rhythm itself,
        not a supraventricular ectopic beat: those S calls become N."""
        b = self.beats(recording, lead)
        rate, duration = recording.rate, recording.duration_s
        rhythm = read_rhythm(b.peaks, b.classes, rate, duration, b.judged, b.paced)
        if rhythm.af_episodes:
            t = b.peaks / rate
            in_af = np.zeros(len(t), dtype=bool)
            for e in rhythm.af_episodes:
                in_af |= (t >= e.start_s) & (t < e.end_s)
            classes = np.where(in_af & (b.classes == "S"), "N", b.classes)
            b = dataclasses.replace(b, classes=classes)
            rhythm = read_rhythm(b.peaks, b.classes, rate, duration, b.judged, b.paced)
        return b, rhythm

    def analyze(self, recording: EcgRecording, lead: str | int | None = None) -> EcgAnalysis:
        started = time.perf_counter()
        b, rhythm = self.read(recording, lead)
        rate = recording.rate
        covered = sum(end - start for start, end, _ in b.unsure)
        quality = max(0.0, 1.0 - covered / max(recording.duration_s, 1e-9))
        label, reason = _label(rhythm, quality)
        return EcgAnalysis(
            duration_s=recording.duration_s,
            leads=recording.leads,
            lead=recording.leads[b.lead],
            source_rate=recording.source_rate,
            beat_times_s=b.peaks / rate,
            beat_classes=b.classes,
            beat_probabilities=b.chosen,
            unsure_stretches=b.unsure,
            rhythm=rhythm,
            label=label,
            quality=quality,
            reason=reason,
            warnings=recording.warnings,
            model_version=self.model.version,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )
