"""Recording quality and heart rate from the heart-sound envelope.

A heart-sound recording worth judging has a regular beat: its energy envelope repeats once
per cardiac cycle. The height of the envelope's autocorrelation peak in the heart-rate range
measures that regularity (0 = no rhythm, 1 = perfectly periodic); the peak's lag gives the
heart rate. Noise, speech, rubbing and an unplaced microphone have no such peak. Music has
one (its drum beat), so a second check refuses sound held in sustained tones
(:func:`tonal_share`), which a heartbeat never is.

The envelope is the 25–400 Hz level, which the loud low band of S1 and S2 dominates. Where
that level shows no beat, a second look reads a level made of six bands weighted by how
strongly each beats (:func:`beat_weighted_levels`): a phone's microphone cuts the low band
(below ~100–200 Hz) and rumble can fill it, while the bands above still carry the beat.
Noise gets two chances, so the second look needs a clearer beat (``SECOND_LOOK_MARGIN``).
On the phone simulation's 412 test recordings without added noise, 62 % passed the first
look alone and 74 % pass with the second (at 10 dB SNR 63 % → 70 %), the heart rate within
10 % of the clean recording's as often (96 %); of the PhysioNet recordings 4.8 % are refused
instead of 5.4 % (abnormal 10.3 % instead of 12.2 %); noise-only phone recordings are
refused as before (98 %).

The peak is measured in short overlapping segments (6 s, every 2 s) and the median taken:
real hearts speed up and slow down (breathing, arrhythmia) and real recordings hold bursts
of noise, and one autocorrelation over a whole minute smears the beat away. The median is
then calibrated for the recording's length (:func:`calibrated_score`), because noise in a
short recording reaches higher peaks by chance.

Calibration (2,753 PhysioNet 2016 recordings, training-a…f, and synthetic noise of eight
kinds at 3–60 s): with the first look alone, 5.4 % of the real recordings score below
0.35 (abnormal 12.2 %, normal 3.7 %), against 11.5 % (abnormal 23.7 %) with the single
whole-recording autocorrelation this replaced; 95 % of white, pink, band-limited, brown,
click and hum noise scores below 0.31. Known limits: a strongly irregular rhythm (e.g.
atrial fibrillation) scores lower than a regular one, and speech-like or rubbing noise with
a syllable rhythm passes 0.35 in about 5–10 % of cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft
from scipy import signal as sps

from auscult.filters import butter, zero_phase

__all__ = [
    "BEAT_BANDS_HZ",
    "Quality",
    "assess_quality",
    "autocorrelation",
    "band_power",
    "beat_weighted_levels",
    "calibrated_score",
    "envelope",
    "level_heart_rate",
    "noise_floor",
    "segment_autocorrelation",
    "segment_periodicity",
    "smooth_log_level",
    "sound_levels",
    "tonal_share",
]

ENVELOPE_RATE = 50  # Hz
ENVELOPE_LOWPASS_HZ = 4.0  # smooths S1 and S2 into one bump per beat; tolerates beat jitter
MIN_BPM, MAX_BPM = 35.0, 200.0
SEGMENT_S, SEGMENT_HOP_S = 6.0, 2.0
#: Score that 95 % of noise-only recordings stay below, whatever their length (see
#: :func:`noise_floor` and :func:`calibrated_score`).
NOISE_SCORE = 0.30
#: Below this score the envelope's peak is within the reach of noise, so its lag is no
#: heart rate.
RATE_MIN_SCORE = 0.35
#: How much higher than :func:`noise_floor` the second look's periodicity (the beat-weighted
#: band level, :func:`beat_weighted_levels`) must reach for the same score. Two looks give
#: noise two chances: measured on white, pink, brown, 20–1000, 25–80 and 100–400 Hz noise
#: (360 recordings per length, 3–60 s), this margin keeps the share of noise passing the
#: floor within 1.4 points of one look's (3 s: 6.1 % → 7.5 %; 10 s and longer: +0–0.6),
#: where no margin would double it (models/experiments.md, session 22).
SECOND_LOOK_MARGIN = 0.10
#: Share of samples at full scale from which the score falls, and at which it is 0. Clipping
#: adds harmonics that read like a murmur: the 413 validation records clipped on purpose
#: (session 31, the product's path) keep their calls at 2 % (AUC 0.921 → 0.901, specificity
#: 0.73 → 0.72); at 5 % specificity falls to 0.64, at 10 % to 0.45 and at 20 % to 0.15, normal
#: hearts pushed towards "abnormal". Real stethoscope recordings clip less and are still
#: called right: the four test records with 3.5–6.6 % clipped all keep their reference
#: label, and of the 2,753 PhysioNet records one has 5 % or more.
CLIP_FREE, CLIP_ZERO = 0.05, 0.10
#: Share of a recording's power above ~1 kHz from which the score falls, and at which it is 0.
#: Heart sounds hold almost none there: on 51 real phone recordings pressed to the chest
#: (phone_unlabelled) the median share is 0.7 %, the 90th percentile 24 %; synthetic speech
#: and rubbing through a phone channel hold 72–89 %.
HIGH_BAND_FREE, HIGH_BAND_ZERO = 0.3, 0.6
#: Share of the 60–900 Hz power held in narrow spectral lines (sustained tones: music, a
#: whistle, feedback) from which the score falls, and at which it is 0. A heartbeat has no
#: sustained tone: the 1,928 PhysioNet 2016 training records reach at most 0.62 (median
#: 0.01; validation and test records at most 0.61 and 0.31), 50 real phone recordings
#: pressed to the chest at most 0.24, while music with a drum beat through a phone channel,
#: which the rhythm check takes for a heartbeat, holds 0.80–0.93.
TONAL_FREE, TONAL_ZERO = 0.7, 0.8
TONAL_WINDOW_S = 0.256  # 3.9 Hz bins: a tone is one narrow line, a heart sound a broad hump
#: Below 60 Hz the 25 Hz high-pass corner turns a heart sound's broad low hump into a peak.
TONAL_BAND_HZ = (60.0, 900.0)
TONAL_PROMINENCE_DB = 10.0  # a line stands this far above the bins 3 bins away on both sides
#: Mains hum (50/60 Hz and every harmonic in the band, ± the two bins a tone falls between)
#: is no music: a stethoscope's hum is no reason to refuse a heartbeat.
MAINS_HALF_WIDTH_HZ = 6.0


@dataclass(frozen=True)
class Quality:
    """How judgeable a recording is."""

    score: float  # 0–1, higher is better
    periodicity: float  # median autocorrelation peak of the envelope in the heart-rate range
    heart_rate_bpm: float | None  # None when no regular beat was found
    clip_fraction: float
    high_band_share: float = 0.0  # power above ~1 kHz (speech, rubbing, room noise), 0–1
    tonal_share: float = 0.0  # power in sustained tones (music, a whistle), 0–1
    #: The level the heart rate came from when only the second look found it
    #: (:func:`beat_weighted_levels`): the 25–400 Hz level shows no beat, so the
    #: segmentation follows this one instead. None when the first look found the beat.
    beat_level: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def second_look(self) -> bool:
        """Whether the heart rate was found only in the beat-weighted level."""
        return self.beat_level is not None

    @property
    def problem(self) -> str:
        """What most likely spoiled the recording, in a few plain words."""
        if self.high_band_share > HIGH_BAND_FREE:
            return (
                f"{self.high_band_share:.0%} of the sound lies above the heart-sound range — "
                "speech, rubbing or room noise rather than a heartbeat"
            )
        if self.tonal_share > TONAL_FREE:
            return (
                f"{self.tonal_share:.0%} of the sound is sustained tones — music, a whistle or "
                "feedback rather than a heartbeat"
            )
        if self.clip_fraction > CLIP_FREE:
            return f"{self.clip_fraction:.0%} of the samples are clipped (too loud)"
        return "no regular heartbeat stands out"


def sound_levels(x: np.ndarray, rate: int) -> np.ndarray:
    """Mean |x| in the 25–400 Hz band per 20 ms frame (50 Hz), ``(len(x) // (rate // 50),)``.

    Both the quality check's :func:`envelope` and the heart-cycle segmentation start from
    this level; an analysis computes it once and hands it to both.
    """
    step = rate // ENVELOPE_RATE
    n = len(x) // step
    if n == 0:
        return np.zeros(0)
    sos = butter(2, (25.0, 400.0), "bandpass", rate)
    band = sps.sosfilt(sos, np.asarray(x, dtype=np.float64))
    return np.abs(band[: n * step]).reshape(n, step).mean(axis=1)


#: Bands (Hz) of :func:`beat_weighted_levels`: S1 and S2 hold most of their energy in the
#: lowest two, which a phone's microphone cuts (below ~100–200 Hz) and rumble can fill.
BEAT_BANDS_HZ = ((25, 50), (50, 80), (80, 120), (120, 160), (160, 240), (240, 400))
_BEAT_WEIGHT_POWER = 2  # a band's weight: its beat's autocorrelation peak to this power


def band_power(
    x: np.ndarray, rate: int, bands_hz: tuple[tuple[int, int], ...], resolution_hz: float
) -> np.ndarray:
    """Power per 20 ms frame in each band, ``(len(bands_hz), len(x) // (rate // 50))``.

    One short-time spectrum serves all bands: a Hann window two frames long centred on each
    frame, zero-padded to a ``resolution_hz`` grid.
    """
    step = rate // ENVELOPE_RATE
    n = len(x) // step
    if n == 0:
        return np.zeros((len(bands_hz), 0), dtype=np.float32)
    width = 2 * step
    padded = np.pad(np.asarray(x, dtype=np.float32), (step // 2, width))
    frames = np.lib.stride_tricks.sliding_window_view(padded, width)[: n * step : step]
    n_fft = max(width, int(rate / resolution_hz))
    # scipy's FFT keeps float32 frames in float32 (three times faster here than numpy's)
    power = np.abs(scipy.fft.rfft(frames * np.hanning(width).astype(np.float32), n_fft)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    bins = [np.flatnonzero((freqs >= lo) & (freqs < hi)) for lo, hi in bands_hz]
    return np.stack([power[:, b[0] : b[-1] + 1].sum(axis=1) for b in bins])


def autocorrelation(env: np.ndarray) -> np.ndarray:
    """Normalised autocorrelation of a mean-removed envelope (unbiased, lag 0 = 1)."""
    e = env - env.mean()
    n = len(e)
    spectrum = np.fft.rfft(e, 2 * n)
    ac = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    if ac[0] <= 0:
        return np.zeros(n)
    return ac / ac[0] * n / (n - np.arange(n))


def smooth_log_level(log_level: np.ndarray) -> np.ndarray:
    """A log level at 50 Hz low-passed at 8 Hz with zero phase (S1 and S2 stay apart, the
    frame-to-frame flicker goes); returned as is when 15 frames or fewer."""
    if len(log_level) <= 15:
        return log_level
    return zero_phase(2, 8.0, "lowpass", ENVELOPE_RATE)(log_level)


def beat_weighted_levels(x: np.ndarray, rate: int) -> np.ndarray:
    """A 50 Hz level that follows whichever bands carry the beat, ``(len(x) // (rate // 50),)``.

    Each of :data:`BEAT_BANDS_HZ` gets its log level per frame, less its own mean (a fixed
    EQ or a microphone's low cut is a constant per band in log and drops out); the bands are
    averaged with weights from how strongly each repeats at a heart period (the peak of its
    autocorrelation in the heart-rate range, squared). On a stethoscope the loud low band
    beats most clearly and leads; where a phone cut it or rumble fills it, it stops
    repeating and the bands above take over. Returned as an amplitude-like level (the
    exponential of the weighted mean), like :func:`sound_levels`.
    """
    power = band_power(x, rate, BEAT_BANDS_HZ, 12.5).astype(np.float64)
    if power.shape[1] == 0:
        return np.zeros(0)
    log = 0.5 * np.log(power + 1e-6 * power.max(axis=1, keepdims=True) + 1e-20)
    log = np.stack([smooth_log_level(band) for band in log])
    log -= log.mean(axis=1, keepdims=True)
    lo, hi = int(ENVELOPE_RATE * 60 / MAX_BPM), int(ENVELOPE_RATE * 60 / MIN_BPM)
    if log.shape[1] > hi:
        peaks = np.array([autocorrelation(band)[lo:hi].max() for band in log])
    else:
        peaks = np.zeros(len(log))
    weights = np.clip(peaks, 0.0, None) ** _BEAT_WEIGHT_POWER
    if weights.sum() <= 0:
        weights = np.ones(len(log))
    return np.exp(weights @ log / weights.sum())


def envelope(x: np.ndarray, rate: int, levels: np.ndarray | None = None) -> np.ndarray:
    """Mean-removed amplitude envelope of a heart-sound signal, sampled at 50 Hz.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n_samples,)`` band-limited signal (see ``utils.prepare_signal``).
    rate : int
        Sample rate of ``x`` in Hz (at least 1 kHz).
    levels : numpy.ndarray, optional
        ``sound_levels(x, rate)`` when already computed.

    Returns
    -------
    numpy.ndarray
        ``(n_samples // (rate // 50),)`` envelope: mean |x| in the 25–400 Hz band per 20 ms
        frame, low-passed at 4 Hz, mean removed.
    """
    return _smoothed(sound_levels(x, rate) if levels is None else levels)


def _smoothed(levels: np.ndarray) -> np.ndarray:
    """A 50 Hz level low-passed at ``ENVELOPE_LOWPASS_HZ``, mean removed."""
    if len(levels) == 0:
        return np.zeros(0)
    if len(levels) > 15:
        levels = zero_phase(2, ENVELOPE_LOWPASS_HZ, "lowpass", ENVELOPE_RATE)(levels)
    return levels - levels.mean()


def tonal_share(x: np.ndarray, rate: int) -> float:
    """Share (0–1) of the signal's 60–900 Hz power that lies in narrow spectral lines.

    Spectra of 256 ms Hann frames (every 128 ms); a bin is a line where it is a local
    maximum standing ``TONAL_PROMINENCE_DB`` above the bins three away on both sides (a
    Hann window keeps a pure tone within ±2 bins). Each line counts with its two
    neighbours, summed over the whole recording, so a faint tone in quiet diastole weighs
    little against the heart sounds. Mains hum (50/60 Hz and its harmonics) is left out.
    """
    width = int(TONAL_WINDOW_S * rate)
    if len(x) < width:
        return 0.0
    frames = np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float64), width)
    frames = frames[:: width // 2] * np.hanning(width)
    power = np.abs(np.fft.rfft(frames, axis=1)).T ** 2 + 1e-20  # (bins, frames)
    freqs = np.fft.rfftfreq(width, 1.0 / rate)
    keep = (freqs >= TONAL_BAND_HZ[0]) & (freqs <= TONAL_BAND_HZ[1])
    for mains in (50.0, 60.0):
        keep &= np.abs(freqs - mains * np.round(freqs / mains)) > MAINS_HALF_WIDTH_HZ
    db, k = 10.0 * np.log10(power), 3
    mid = db[k:-k]
    line = np.zeros(power.shape, dtype=bool)
    line[k:-k] = (
        (mid >= db[k - 1 : -k - 1])
        & (mid >= db[k + 1 : len(db) - k + 1])
        & (mid - db[: -2 * k] >= TONAL_PROMINENCE_DB)
        & (mid - db[2 * k :] >= TONAL_PROMINENCE_DB)
    )
    near = line.copy()
    near[1:] |= line[:-1]
    near[:-1] |= line[1:]
    in_band = power[keep]
    total = float(in_band.sum())
    return float(in_band[near[keep]].sum() / total) if total > 0 else 0.0


def _lag_range() -> tuple[int, int]:
    """Lags (envelope frames) of the heart-rate range MAX_BPM…MIN_BPM."""
    lo = int(np.floor(ENVELOPE_RATE * 60.0 / MAX_BPM))
    hi = int(np.ceil(ENVELOPE_RATE * 60.0 / MIN_BPM))
    return lo, hi


def _local_maxima(curve: np.ndarray, lo: int) -> np.ndarray:
    """Indices ≥ ``lo`` where ``curve`` has a local maximum (not a slope at the range edge)."""
    k = np.arange(max(lo, 1), len(curve) - 1)
    return k[(curve[k] >= curve[k - 1]) & (curve[k] > curve[k + 1])]


def segment_autocorrelation(env: np.ndarray) -> np.ndarray:
    """Envelope autocorrelation of each 6 s segment (every 2 s), lags 0 … 1/MIN_BPM.

    Parameters
    ----------
    env : numpy.ndarray
        ``(n_frames,)`` envelope at 50 Hz (see :func:`envelope`).

    Returns
    -------
    numpy.ndarray
        ``(n_segments, n_lags)`` normalised autocorrelations, lag ``k`` is ``k / 50`` s.
        A recording shorter than one segment is one segment (with fewer lags when it is
        shorter than two slowest beats); flat segments are left out.
    """
    _, hi = _lag_range()
    width = int(SEGMENT_S * ENVELOPE_RATE)
    hop = int(SEGMENT_HOP_S * ENVELOPE_RATE)
    if len(env) < 2:
        return np.zeros((0, 0))
    segments = np.lib.stride_tricks.sliding_window_view(env, min(width, len(env)))[::hop]
    n = segments.shape[1]
    e = segments - segments.mean(axis=1, keepdims=True)
    # all segments at once through the FFT (zero-padded to 2n: no wrap-around)
    spectrum = np.fft.rfft(e, 2 * n, axis=1)
    ac = np.fft.irfft(spectrum.real**2 + spectrum.imag**2, 2 * n, axis=1)
    ac = ac[:, : min(hi, n // 2) + 1]
    ac = ac[ac[:, 0] > 0]  # flat segments have no rhythm to measure
    return ac / (ac[:, :1] * (n - np.arange(ac.shape[1])) / n)


def segment_periodicity(curves: np.ndarray) -> np.ndarray:
    """Height (0–1) of each segment's highest autocorrelation peak in the heart-rate range.

    ``curves`` is ``(n_segments, n_lags)`` from :func:`segment_autocorrelation`; returns
    ``(n_segments,)``, 0 for a segment without a peak in range.
    """
    lo, _ = _lag_range()
    peaks = np.zeros(len(curves))
    for i, curve in enumerate(curves):
        k = _local_maxima(curve, lo)
        if len(k):
            peaks[i] = float(np.clip(curve[k].max(), 0.0, 1.0))
    return peaks


def _beat_period(curve: np.ndarray) -> float | None:
    """Beat period in frames: the shortest-lag peak within 80 % of the highest one.

    The highest peak may sit at two or three beats (equally periodic); the first one near
    its height is the beat itself, while S1→S2 (one pair per beat, not two) stays lower.
    """
    lo, _ = _lag_range()
    k = _local_maxima(curve, lo)
    top = float(curve[k].max()) if len(k) else 0.0
    if top <= 0:
        return None  # no lag at which the envelope repeats itself
    lag = int(k[curve[k] >= 0.8 * top][0])
    a, b, c = curve[lag - 1], curve[lag], curve[lag + 1]
    denominator = a - 2 * b + c
    shift = 0.5 * (a - c) / denominator if denominator < 0 else 0.0
    return lag + float(np.clip(shift, -0.5, 0.5))


def noise_floor(duration_s: float) -> float:
    """Periodicity that 95 % of noise-only recordings of this length stay below.

    Short recordings hold few segments, so noise reaches higher peaks by chance: measured
    on white, pink and 20–1000 Hz noise (360 recordings per length, 3–60 s), the 95th
    percentile follows ``0.26 + 0.8 / duration_s`` within ±0.03 (0.52 at 3 s, 0.30 at
    20 s, 0.27 at 60 s).
    """
    return 0.26 + 0.8 / max(duration_s, 1.0)


def calibrated_score(periodicity: float, duration_s: float, margin: float = 0.0) -> float:
    """Map periodicity to a 0–1 score on which noise of any length sits below 0.30.

    A linear map that keeps 1 at 1 and sends the length's :func:`noise_floor` (raised by
    ``margin``) to ``NOISE_SCORE``: a short recording needs a clearer beat for the same score.
    """
    floor = noise_floor(duration_s) + margin
    score = 1.0 - (1.0 - periodicity) * (1.0 - NOISE_SCORE) / (1.0 - floor)
    return float(np.clip(score, 0.0, 1.0))


def _falling(share: float, free: float, zero: float) -> float:
    """1 up to ``free``, falling linearly to 0 at ``zero``: how much of the score a share of
    non-heart sound (or of clipped samples) leaves."""
    return float(np.clip((zero - share) / (zero - free), 0.0, 1.0))


def _rhythm(
    env: np.ndarray, duration_s: float, margin: float = 0.0
) -> tuple[float, float, float | None]:
    """(periodicity, its calibrated score, heart rate or None) of an envelope."""
    curves = segment_autocorrelation(env)
    if not len(curves):
        return 0.0, 0.0, None
    peaks = segment_periodicity(curves)
    periodicity = float(np.median(peaks))
    regularity = calibrated_score(periodicity, duration_s, margin)
    bpm = None
    if regularity >= RATE_MIN_SCORE:
        # Average the curves of the more periodic half: one clear peak per beat.
        period = _beat_period(curves[peaks >= periodicity].mean(axis=0))
        bpm = 60.0 * ENVELOPE_RATE / period if period else None
    return periodicity, regularity, bpm


def level_heart_rate(levels: np.ndarray) -> float | None:
    """Heart rate (bpm) read from a 50 Hz level as :func:`assess_quality` reads it (the more
    periodic half of its segments), None where the beat is within the reach of noise."""
    return _rhythm(_smoothed(levels), len(levels) / ENVELOPE_RATE)[2]


def assess_quality(
    x: np.ndarray,
    rate: int,
    clip_fraction: float = 0.0,
    high_band_share: float = 0.0,
    levels: np.ndarray | None = None,
) -> Quality:
    """Score a prepared signal (see ``utils.prepare_signal``) for periodicity and clipping.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n_samples,)`` band-limited, normalised signal.
    rate : int
        Its sample rate in Hz.
    clip_fraction : float
        Share of samples at full scale in the decoded file (``Recording.clip_fraction``);
        the score falls from ``CLIP_FREE`` to 0 at ``CLIP_ZERO``.
    high_band_share : float
        Share of the decoded recording's power above ~1 kHz (``ModelInput.high_band_share``);
        from 0.3 the score falls linearly, to 0 at 0.6. The share of sustained tones
        (:func:`tonal_share`) lowers it the same way from 0.7 to 0.8.
    levels : numpy.ndarray, optional
        ``sound_levels(x, rate)`` when already computed.

    Returns
    -------
    Quality
        ``score`` = median segment periodicity, calibrated for the recording's length
        (:func:`calibrated_score`), × the clipping, high-band and tonal penalties;
        ``heart_rate_bpm`` from the mean autocorrelation of the more periodic half of the
        segments, None when the calibrated periodicity is below ``RATE_MIN_SCORE``. Where
        the 25–400 Hz envelope gives no rate, periodicity, score and rate come from
        :func:`beat_weighted_levels` (its floor ``SECOND_LOOK_MARGIN`` higher) when that
        level beats more clearly; ``beat_level`` holds that level when the rate was found
        only there.
    """
    duration_s = len(x) / rate
    periodicity, regularity, bpm = _rhythm(envelope(x, rate, levels), duration_s)
    beat_level = None
    if bpm is None:
        # No beat in the 25–400 Hz level: look again where the beat may still be (a phone's
        # low cut or rumble can bury it in the low band that level is mostly made of).
        weighted = beat_weighted_levels(x, rate)
        second = _rhythm(envelope(x, rate, weighted), duration_s, SECOND_LOOK_MARGIN)
        if second[1] > regularity:
            periodicity, regularity, bpm = second
            beat_level = weighted if bpm is not None else None
    tones = tonal_share(x, rate)
    score = (
        regularity
        * _falling(clip_fraction, CLIP_FREE, CLIP_ZERO)
        * _falling(high_band_share, HIGH_BAND_FREE, HIGH_BAND_ZERO)
        * _falling(tones, TONAL_FREE, TONAL_ZERO)
    )
    return Quality(
        score=score,
        periodicity=periodicity,
        heart_rate_bpm=bpm,
        clip_fraction=clip_fraction,
        high_band_share=high_band_share,
        tonal_share=tones,
        beat_level=beat_level,
    )
