"""Murmur evidence read from the heart cycle, meant to carry to stethoscopes never heard.

A murmur is sound where a normal heart is quiet: between S1 and S2 (systolic) or between S2
and the next S1 (diastolic). For each of four bands, the level of the middle of each gap is
divided by the level of the same cycle's S1 *in the same band*: the device's gain and its
frequency colouring multiply both and cancel in the ratio, which a spectrogram-reading CNN
cannot rely on. A murmur also has a shape that repeats with every beat, where noise in the
gap is new each beat: the beat-to-beat *coherence* of each gap's loudness contour above
160 Hz is a correlation, so gain and colouring cancel in it too. The features (log of the
median ratio over cycles, the two coherences, and the beat-to-beat variation of the period)
feed a logistic regression, :class:`CycleModel`, whose logit is
blended with the CNN's (see ``auscult.analyzer``).

Leave-one-database-out on PhysioNet 2016 (``scripts/cycle_lodo.py``): the cycle model alone
ranks the unseen database with a mean AUC of 0.77 (0.74 without the coherences), against
0.65 for the CNN alone; see ``models/experiments.md`` for the blend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

import utils
from auscult.cycles import Cycles, complete_cycles, gap_levels, segment_cycles
from auscult.quality import Quality, assess_quality, band_power, sound_levels
from config import Settings

__all__ = [
    "BANDS_HZ",
    "FEATURE_NAMES",
    "READING_VERSION",
    "CycleModel",
    "cycle_features",
    "fit_cycle_model",
    "gap_coherence",
    "low_band_captured",
    "low_band_left_out",
    "murmur_phase",
    "read_heart_cycle",
    "recording_cycle_features",
]

#: Raised whenever the reading of a recording's heart cycles changes (quality check,
#: segmentation or features), so a training cache of older features is rebuilt. 2: the
#: quality check's second look for a beat (session 22). 3: the segmentation follows the
#: beat-weighted level where only the second look found the beat (session 23). 4: the
#: coherences read beat-to-beat alikeness free of the number of beats (session 32). 5: each
#: 30 s stretch of a recording over a minute is decoded at the rate the quality check reads
#: from it (session 33).
READING_VERSION = 5
BANDS_HZ = ((25, 80), (80, 160), (160, 320), (320, 640))
FEATURE_NAMES = (
    *(f"{kind}_{lo}_{hi}" for lo, hi in BANDS_HZ for kind in ("s2", "systole", "diastole")),
    "period_cv",
    "coherence_systole_160_640",
    "coherence_diastole_160_640",
)
_LOW_BAND = slice(0, 3)  # the 25–80 Hz features (FEATURE_NAMES is band-major)
_GAP_RATIOS = slice(0, 3 * len(BANDS_HZ))
_PERIOD = FEATURE_NAMES.index("period_cv")
_COHERENCE = slice(_PERIOD + 1, _PERIOD + 3)  # systole, diastole
#: Bands whose gap contours are compared beat to beat (160–320 and 320–640 Hz: murmurs are
#: higher pitched than S1 and S2, which the 25–160 Hz bands hold most of), and the number of
#: points each gap's contour is resampled to, whatever the cycle's length.
_CONTOUR_BANDS = slice(2, 4)
_CONTOUR_POINTS = 8
_MIN_CONTOUR_FRAMES = 4  # a gap shorter than 80 ms has no contour to compare
_MIN_CONTOUR_CYCLES = 3

#: Level of 25–80 Hz relative to 80–160 Hz over the whole recording (dB) below which the
#: device is taken not to have captured the lowest band: below every one of the 2,753
#: PhysioNet 2016 recordings the cycle model learned from (lowest −5.2 dB, 1st percentile
#: −1.0, median 9.1). There its gaps and its S1 hold the device's noise, not the heart, and
#: their ratios would read as sound filling the gaps (the model's strongest feature is
#: diastole at 25–80 Hz), so the band's features are left out (filled with the training
#: medians). Phone microphones cut below ~100–200 Hz: 24 of 50 real phone recordings
#: (phone_unlabelled, counted only) fall below this level.
LOW_BAND_MIN_DB = -6.0


def _band_levels(band: np.ndarray, rate: int) -> list[np.ndarray]:
    """RMS level per segmentation frame (20 ms) in each of :data:`BANDS_HZ`."""
    return list(np.sqrt(band_power(band, rate, BANDS_HZ, 25.0)))


def cycle_features(band: np.ndarray, rate: int, cycles: Cycles) -> np.ndarray:
    """``(len(FEATURE_NAMES),)`` features of one recording; NaN where no cycle was found,
    and in the 25–80 Hz features when the device did not capture that band.

    ``band`` is ``ModelInput.band`` at ``rate`` Hz and ``cycles`` its segmentation (its
    ``evidence_states``: recordings without a regular beat get best-guess cycles too, as in
    training).
    """
    row = np.full(len(FEATURE_NAMES), np.nan)
    states = cycles.evidence_states if cycles.evidence_states is not None else cycles.states
    runs = complete_cycles(states)
    if not runs:
        return row
    bands = np.stack(_band_levels(band, rate))
    levels = gap_levels(bands, runs)  # 3 × (bands, cycles)
    # one row per feature (band-major, as FEATURE_NAMES), the median of its usable cycles:
    # the middle of the sorted usable values (the mean of the middle two), as np.median
    ratios = np.stack(levels, axis=1).reshape(3 * len(BANDS_HZ), -1)
    usable = np.isfinite(ratios) & (ratios > 0)
    count = usable.sum(axis=1)
    ordered = np.sort(np.where(usable, ratios, np.inf), axis=1)
    found = np.flatnonzero(count)
    middle = (ordered[found, (count[found] - 1) // 2] + ordered[found, count[found] // 2]) / 2
    row[found] = np.log(middle)
    if not low_band_captured(bands):
        row[_LOW_BAND] = np.nan
    periods = np.array([(nxt[0] - s1[0]) for s1, _, nxt in runs], dtype=np.float64)
    row[_PERIOD] = float(np.std(periods) / np.mean(periods))
    row[_COHERENCE] = gap_coherence(bands[_CONTOUR_BANDS], runs)
    return row


def gap_coherence(
    bands: np.ndarray, cycles: list[tuple[tuple[int, int], ...]]
) -> tuple[float, float]:
    """How alike the loudness contour of systole, and of diastole, is from beat to beat.

    Each gap's log level in each of ``bands`` (``(n_bands, n_frames)``) is resampled to
    :data:`_CONTOUR_POINTS` points from the end of one heart sound to the start of the next,
    and its mean removed per band; the coherence is the correlation between two beats'
    contours that :func:`_pair_reliability` reads from them (1: the same shape every beat,
    as a murmur; about 0: a shape new each beat, as noise or a quiet gap). NaN with fewer
    than :data:`_MIN_CONTOUR_CYCLES` cycles whose gap is long enough.
    """
    if len(cycles) < _MIN_CONTOUR_CYCLES:
        return np.nan, np.nan
    log_level = np.log(np.asarray(bands, dtype=np.float64) + 1e-9)
    runs = np.minimum(np.array(cycles, dtype=np.int64), log_level.shape[-1])
    t = np.linspace(0.0, 1.0, _CONTOUR_POINTS)
    out = []
    for start, end in ((runs[:, 0, 1], runs[:, 1, 0]), (runs[:, 1, 1], runs[:, 2, 0])):
        keep = end - start >= _MIN_CONTOUR_FRAMES
        if keep.sum() < _MIN_CONTOUR_CYCLES:
            out.append(np.nan)
            continue
        at = start[keep, None] + t * (end[keep, None] - start[keep, None] - 1)
        low = np.floor(at).astype(np.int64)
        high = np.minimum(low + 1, log_level.shape[-1] - 1)
        frac = at - low
        contour = log_level[:, low] * (1 - frac) + log_level[:, high] * frac  # band, cycle, t
        contour = contour - contour.mean(axis=-1, keepdims=True)
        shapes = contour.transpose(1, 0, 2).reshape(int(keep.sum()), -1)  # cycle, band · t
        out.append(_pair_reliability(shapes))
    return out[0], out[1]


def _pair_reliability(shapes: np.ndarray) -> float:
    """The correlation between two rows that the rows' agreement implies, whatever their
    number (NaN if no row has any variation).

    Each row is correlated with the mean of the other ``m`` rows and the median ``r`` taken.
    That mean gets cleaner with more rows, so ``r`` alone grows with recording length (over
    150 records of ≥ 30 s, +0.07 for the whole record against its first quarter). With
    rows sharing one shape at pairwise correlation ``ρ``, ``r² = ρ² / (ρ + (1 − ρ) / m)``
    (Spearman–Brown); solving for ``ρ`` takes the number of beats out.
    """
    rest = (shapes.sum(axis=0) - shapes) / (len(shapes) - 1)
    norm = np.linalg.norm(shapes, axis=1) * np.linalg.norm(rest, axis=1)
    usable = norm > 0
    if not usable.any():
        return np.nan
    r = float(np.median(np.sum(shapes * rest, axis=1)[usable] / norm[usable]))
    m = len(shapes) - 1
    b = r * r * (1.0 - 1.0 / m)
    rho = (b + np.sqrt(b * b + 4.0 * r * r / m)) / 2.0
    return float(np.copysign(min(rho, 1.0), r))


def low_band_captured(bands: np.ndarray) -> bool:
    """Whether the recording holds 25–80 Hz at a level some stethoscope in training had
    (:data:`LOW_BAND_MIN_DB`); ``bands`` are the frame levels of :func:`_band_levels`."""
    low, next_band = np.mean(bands[0] ** 2), np.mean(bands[1] ** 2)
    if next_band <= 0:
        return low > 0
    return bool(low > 0 and 10 * np.log10(low / next_band) >= LOW_BAND_MIN_DB)


def low_band_left_out(features: np.ndarray) -> bool:
    """Whether :func:`cycle_features` left out the 25–80 Hz band of a recording whose other
    bands it measured (the device did not capture that band)."""
    row = np.asarray(features, dtype=np.float64)
    other_bands = row[_LOW_BAND.stop : _GAP_RATIOS.stop]
    return bool(np.isnan(row[_LOW_BAND]).all() and np.isfinite(other_bands).any())


#: 90th percentile of the mid-systole and mid-diastole level relative to S1 at 320–640 Hz,
#: over the 2,186 normal PhysioNet 2016 recordings: above it in 36 % of abnormal recordings'
#: systole (10 % of normal ones by construction), 25 % of their diastole. Murmurs are higher
#: pitched than S1, so this band shows them better than the whole envelope does (12 %).
FILLED_LEVEL = 1.01
_PHASE_BAND = "320_640"


def murmur_phase(features: np.ndarray) -> str:
    """Which gap holds more high-pitched sound than nine of ten normal hearts: "systolic",
    "diastolic", "both" or "" (neither, or no cycles). Timing only: it names no lesion."""
    row = dict(zip(FEATURE_NAMES, np.asarray(features, dtype=np.float64), strict=True))
    limit = np.log(FILLED_LEVEL)
    systolic = row[f"systole_{_PHASE_BAND}"] >= limit  # NaN compares False
    diastolic = row[f"diastole_{_PHASE_BAND}"] >= limit
    return {(True, True): "both", (True, False): "systolic", (False, True): "diastolic"}.get(
        (bool(systolic), bool(diastolic)), ""
    )


@dataclass(frozen=True)
class CycleModel:
    """Standardised logistic regression on :data:`FEATURE_NAMES`; plain numpy to apply.

    A recording in which no heart cycle was found has no evidence here: its logit is 0, the
    model's even odds (databases and labels were weighted alike in the fit), so the CNN's
    evidence decides. ``fill`` replaces the features that are missing when others were
    measured (a band the device did not capture) with the training medians. The medians'
    own logit is not neutral: most training hearts are normal (−0.64 for model
    2026.12.03-0647), which pulled short abnormal clips towards "normal".
    ``low`` and ``high`` are the training records' range of each feature: a value beyond it
    counts as the range's edge, so the linear model never extrapolates past what it learned
    from. A gap of digital silence (a synthetic recording, a phone's noise suppression) has
    a level ratio far below any stethoscope's, and would otherwise read as a heart more
    normal than any in training, outvoting the CNN.
    """

    names: tuple[str, ...]
    fill: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None

    def logit(self, features: np.ndarray) -> np.ndarray:
        """Logit of "abnormal" for ``(n, len(FEATURE_NAMES))`` or ``(len(FEATURE_NAMES),)``
        rows; a model fitted before features were added reads the columns it knows."""
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        x = x[:, [FEATURE_NAMES.index(name) for name in self.names]]
        no_cycles = ~np.isfinite(x).any(axis=1)
        x = np.where(np.isfinite(x), x, np.asarray(self.fill))
        if self.low is not None and self.high is not None:  # older cards kept no range
            x = np.clip(x, self.low, self.high)
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        out = np.where(no_cycles, 0.0, z @ np.asarray(self.coef) + self.intercept)
        return out if np.ndim(features) > 1 else out[:1]

    def as_dict(self) -> dict[str, Any]:
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CycleModel:
        if not set(data["names"]) <= set(FEATURE_NAMES):
            raise ValueError("the cycle model was fitted on other features; retrain the model")
        return cls(
            names=tuple(data["names"]),
            fill=tuple(data["fill"]),
            mean=tuple(data["mean"]),
            scale=tuple(data["scale"]),
            coef=tuple(data["coef"]),
            intercept=float(data["intercept"]),
            low=tuple(data["low"]) if "low" in data else None,
            high=tuple(data["high"]) if "high" in data else None,
        )


def balanced_weights(labels: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """Sample weights giving every (database, label) cell the same total weight (mean 1)."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    weights = np.zeros(len(labels))
    for g in np.unique(groups):
        for label in (0, 1):
            cell = (groups == g) & (labels == label)
            if cell.any():
                weights[cell] = 1.0 / cell.sum()
    return weights * len(weights) / weights.sum()


def fit_cycle_model(
    features: np.ndarray, labels: np.ndarray, groups: Sequence[str], c: float = 0.3
) -> CycleModel:
    """Fit on training records: each database and label weighted alike (L2, ``C=c``).

    Weighting databases alike (rather than by size) keeps the largest, mostly normal one
    from deciding what "abnormal" means: leave-one-database-out AUC 0.747 against 0.742.
    """
    from sklearn.linear_model import LogisticRegression  # training only

    x = np.asarray(features, dtype=np.float64)
    fill = np.nanmedian(x, axis=0)
    fill = np.where(np.isfinite(fill), fill, 0.0)
    x = np.where(np.isfinite(x), x, fill)
    low, high = x.min(axis=0), x.max(axis=0)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    model = LogisticRegression(C=c, max_iter=5000)
    model.fit((x - mean) / scale, labels, sample_weight=balanced_weights(labels, groups))
    return CycleModel(
        names=FEATURE_NAMES,
        fill=tuple(float(v) for v in fill),
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        coef=tuple(float(v) for v in model.coef_[0]),
        intercept=float(model.intercept_[0]),
        low=tuple(float(v) for v in low),
        high=tuple(float(v) for v in high),
    )


def read_heart_cycle(
    band: np.ndarray, rate: int, clip_fraction: float = 0.0, high_band_share: float = 0.0
) -> tuple[Quality, Cycles, np.ndarray]:
    """Quality, segmentation and cycle features of ``ModelInput.band``: the one path the
    analyzer and training share.

    The segmentation follows the level the quality check found the beat in: the 25–400 Hz
    level (computed once for both), or where only the second look found it (a phone's low
    cut, rumble), the beat-weighted level.
    """
    levels = sound_levels(band, rate)
    quality = assess_quality(band, rate, clip_fraction, high_band_share, levels)
    if quality.beat_level is not None:
        levels = quality.beat_level
    cycles = segment_cycles(band, rate, quality.heart_rate_bpm, levels)
    return quality, cycles, cycle_features(band, rate, cycles)


def recording_cycle_features(recording: utils.Recording, settings: Settings) -> np.ndarray:
    """Cycle features of a decoded recording, through the analyzer's own path."""
    mi = utils.model_input(recording, settings)
    return read_heart_cycle(
        mi.band, settings.band_rate, recording.clip_fraction, mi.high_band_share
    )[2]
