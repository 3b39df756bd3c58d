"""Turn one recording into an immutable, explainable result.

recording → front end (utils) → quality check → heart-cycle segmentation → model runner →
per-window scores → record score (mean over windows, blended with the heart-cycle model's
evidence when the model card holds one) → calibrated probability (Platt scaling,
metadata.json) → label against the threshold, with a borderline band around it.
A recording too poor to judge is a result (``label="unsure"``, ``reliable=False``), not an
exception; so is a score too close to the threshold (``label="unsure"``, ``borderline=True``).
Only input that is not a usable recording at all raises ``InvalidAudioError``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

import utils
from auscult.background import Background
from auscult.calibration import logit
from auscult.cycle_features import low_band_left_out, murmur_phase, read_heart_cycle
from auscult.cycles import Cycles
from auscult.quality import Quality
from auscult.registry import Registry
from auscult.runner import ModelRunner
from config import Settings, get_settings

__all__ = [
    "LABELS",
    "Analysis",
    "AnalysisResult",
    "Analyzer",
    "blend_scores",
    "record_probability",
]

log = logging.getLogger(__name__)

LABELS = ("normal", "abnormal", "unsure")


@dataclass(frozen=True)
class AnalysisResult:
    """Everything the UI, API, CLI and history need to show one analysis."""

    label: str  # "normal" | "abnormal" | "unsure"
    probability: float  # calibrated record-level probability of an abnormal heart sound, 0–1
    threshold: float  # decision threshold from models/metadata.json
    reliable: bool  # False when the recording is too poor to judge
    reason: str  # one plain-language sentence explaining the label
    duration_s: float
    sample_rate: int  # Hz of the file as decoded
    channels: int
    quality: float  # 0–1 recording quality (regularity of the beat, clipping)
    heart_rate_bpm: float | None
    window_probabilities: tuple[float, ...]
    window_starts_s: tuple[float, ...]
    window_s: float
    padded: bool
    warnings: tuple[str, ...]
    model_version: str
    #: The probability fell inside the borderline band around the threshold: too close to call.
    borderline: bool = False
    band: tuple[float, float] = (0.0, 0.0)  # the borderline band (low, high)
    #: What most likely spoiled a recording judged too poor, in plain words ("" otherwise).
    quality_problem: str = ""
    #: Centres of every S1 and S2 found (seconds); empty when no beat could be followed.
    s1_times_s: tuple[float, ...] = ()
    s2_times_s: tuple[float, ...] = ()
    systole_ms: float | None = None  # median S1 centre → S2 centre
    diastole_ms: float | None = None  # median S2 centre → next S1 centre
    #: Which gap holds more high-pitched sound than nine of ten normal hearts: "systolic",
    #: "diastolic", "both" or "" (see cycle_features.murmur_phase). Names no lesion.
    murmur_phase: str = ""

    @property
    def abnormal_windows(self) -> int:
        return sum(p >= self.threshold for p in self.window_probabilities)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["window_probabilities"] = list(self.window_probabilities)
        data["window_starts_s"] = list(self.window_starts_s)
        data["warnings"] = list(self.warnings)
        data["band"] = list(self.band)
        data["s1_times_s"] = list(self.s1_times_s)
        data["s2_times_s"] = list(self.s2_times_s)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisResult:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        for key in (
            "window_probabilities",
            "window_starts_s",
            "warnings",
            "s1_times_s",
            "s2_times_s",
        ):
            values[key] = tuple(values.get(key, ()))
        if "band" in values:  # rows stored before the borderline band keep the default
            values["band"] = tuple(values["band"])
        return cls(**values)


@dataclass(frozen=True)
class Analysis:
    """A result plus the arrays the UI draws (not stored in history)."""

    result: AnalysisResult
    model_input: utils.ModelInput
    quality: Quality
    cycles: Cycles


def record_probability(window_probabilities: np.ndarray) -> float:
    """The CNN's record-level score: the mean of the window scores."""
    return float(np.mean(window_probabilities))


def blend_scores(
    cnn_raw: np.ndarray | float,
    cycle_logit: np.ndarray | float,
    weight: float,
    cnn_limits: tuple[float, float] | None = None,
) -> np.ndarray:
    """Raw scores (0–1, calibrated afterwards) blending the CNN with the heart-cycle model:
    ``sigmoid((1 − weight) · clip(logit(cnn_raw), *cnn_limits) + weight · cycle_logit)``;
    weight 0 is the CNN.

    ``cnn_limits`` (``training.cnn_logit_limits``) holds the CNN's logit within the middle
    of what it gave the validation records, as the cycle model holds its features to their
    training range: on a device it has not heard the network is often surest where it is
    wrong, and its certainty beyond that range would outvote the heart-cycle evidence.
    None leaves it free (model cards from before the limits were kept).
    """
    z_cnn = logit(cnn_raw)
    if cnn_limits is not None:
        z_cnn = np.clip(z_cnn, *cnn_limits)
    z = (1.0 - weight) * z_cnn + weight * np.asarray(cycle_logit, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-z))


def _reason(
    label: str, probability: float, threshold: float, n_abnormal: int, n_windows: int,
    quality: Quality, min_quality: float, band: tuple[float, float] | None = None,
) -> str:  # fmt: skip
    if label == "unsure" and band is not None:
        lean = "abnormal" if probability >= threshold else "normal"
        return (
            f"borderline: the probability {probability:.2f} lies in the band "
            f"{band[0]:.2f}–{band[1]:.2f} around the threshold {threshold:.2f}, where a small "
            f"change of device or recording flips the call (it leans {lean}). Record again at "
            "another site; if it stays borderline, have a clinician listen"
        )
    if label == "unsure":
        lean = "abnormal" if probability >= threshold else "normal"
        return (
            f"too poor to judge (quality {quality.score:.2f}, needs {min_quality:.2f}): "
            f"{quality.problem} — the recording may be noisy, or the rhythm may be "
            f"irregular (the model leans {lean}, p={probability:.2f}, but that is not a "
            "reliable answer). Press the microphone firmly on the chest in a quiet room and "
            "record again; an irregular rhythm is itself a reason for review"
        )
    pattern = f"abnormal pattern in {n_abnormal} of {n_windows} windows"
    if label == "abnormal":
        return f"{pattern} — consider referral for echocardiography or a specialist review"
    return f"{pattern} — no abnormal pattern found; routine follow-up"


@functools.cache
def limit_blas_threads(threads: int) -> None:
    """Set numpy's BLAS thread count for this process (0 leaves it alone), once per value:
    the setting is process-wide, so a second Analyzer need not scan the loaded libraries
    again. Results are the same — the analysis only multiplies small matrices — but idle
    BLAS threads no longer spin on the core the model and the FFT need."""
    if threads > 0:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads, user_api="blas")


class Analyzer:
    """Analyses recordings with one loaded model; cheap to call many times."""

    def __init__(self, runner: ModelRunner | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        limit_blas_threads(self.settings.blas_threads)
        self.runner = runner or ModelRunner.from_settings(self.settings)
        self._follow_registry = runner is None  # a runner handed in stays as it is
        self._registry = Registry(self.settings)
        self._reload = threading.Lock()

    def current_runner(self) -> ModelRunner:
        """The runner of the registry's active version, reloaded once a promotion or a
        rollback has switched it (one stat per analysis; no restart needed)."""
        if self._follow_registry and self._registry.stamp() != self.runner.stamp:
            with self._reload:
                if self._registry.stamp() != self.runner.stamp:
                    self.runner = ModelRunner.from_settings(self.settings)
                    log.info("now serving model %s", self.runner.version)
        return self.runner

    def analyze(self, source: utils.AudioSource) -> AnalysisResult:
        """Analyse a file path or encoded bytes; raises ``InvalidAudioError`` for unusable input."""
        return self.analyze_detailed(source).result

    def analyze_detailed(self, source: utils.AudioSource) -> Analysis:
        return self.analyze_recording(utils.load_audio(source, self.settings))

    def analyze_recording(self, recording: utils.Recording) -> Analysis:
        s = self.settings
        mi = utils.model_input(recording, s)
        runner = self.current_runner()
        # LiteRT lets go of the GIL while it runs: the network scores the windows on one
        # core while the quality check and the heart-cycle reading run on the other.
        scores = Background(runner.predict, mi.windows)
        quality, cycles, evidence = read_heart_cycle(
            mi.band, s.band_rate, recording.clip_fraction, mi.high_band_share
        )
        raw = scores.result()
        record_raw = record_probability(raw)
        if runner.cycle_model is not None:
            cycle_logit = float(runner.cycle_model.logit(evidence)[0])
            weight, limits = runner.cycle_weight, runner.cnn_limits
            raw = blend_scores(raw, cycle_logit, weight, limits)
            record_raw = float(blend_scores(record_raw, cycle_logit, weight, limits))
        calibrate = runner.calibration
        probs = calibrate(raw)  # each window read as if it were a whole recording
        probability = calibrate.scalar(record_raw)
        threshold = runner.threshold
        band = runner.band
        reliable = quality.score >= s.min_quality
        borderline = reliable and band.contains(probability)
        if not reliable or borderline:
            label = "unsure"
        else:
            label = "abnormal" if probability >= threshold else "normal"
        warnings = list(recording.warnings)
        if mi.padded:
            warnings.append(
                f"recording is shorter than one {s.window_s:.0f} s analysis window; it was "
                "repeated to fill it — a longer recording gives a firmer answer"
            )
        if low_band_left_out(evidence):
            warnings.append(
                "little sound below 80 Hz was recorded (as with a phone's microphone), so the "
                "heart-cycle reading left that band out; low-pitched murmurs may be missed"
            )
        n_abnormal = int(np.sum(probs >= threshold))
        result = AnalysisResult(
            label=label,
            probability=probability,
            threshold=threshold,
            reliable=reliable,
            reason=_reason(
                label,
                probability,
                threshold,
                n_abnormal,
                len(probs),
                quality,
                s.min_quality,
                (band.low, band.high) if borderline else None,
            ),
            duration_s=recording.duration_s,
            sample_rate=recording.sample_rate,
            channels=recording.channels,
            quality=quality.score,
            heart_rate_bpm=cycles.heart_rate_bpm or quality.heart_rate_bpm,
            window_probabilities=tuple(float(p) for p in probs),
            window_starts_s=tuple(float(t) for t in mi.window_starts_s),
            window_s=s.window_s,
            padded=mi.padded,
            warnings=tuple(warnings),
            model_version=runner.version,
            borderline=borderline,
            band=(band.low, band.high),
            quality_problem="" if reliable else quality.problem,
            s1_times_s=cycles.s1_times_s,
            s2_times_s=cycles.s2_times_s,
            systole_ms=cycles.systole_ms,
            diastole_ms=cycles.diastole_ms,
            murmur_phase=murmur_phase(evidence) if cycles.beats else "",
        )
        return Analysis(result=result, model_input=mi, quality=quality, cycles=cycles)
