"""Heart-cycle segmentation: where S1, systole, S2 and diastole lie in a heart-sound recording.

The method follows Springer, Tarassenko and Clifford, "Logistic Regression-HSMM-Based Heart
Sound Segmentation", IEEE Trans. Biomed. Eng. 63(4):822–832, 2016: a hidden semi-Markov
model with the four states in their fixed order (S1 → systole → S2 → diastole → S1) whose
state durations are Gaussians set from the recording's own heart rate and systolic interval
(both read from the autocorrelation of the envelope, after Schmidt et al., Physiol. Meas.
31:513–529, 2010), decoded with the duration-dependent Viterbi algorithm.

Where Springer trains a logistic regression on hand-labelled states to give each frame's
emission probability, this module has no hand-labelled states to train on (the PhysioNet
2016 copy comes without them), so the emission is unsupervised: a frame is "sound" (S1 or
S2) with a probability that rises with its log envelope above the recording's own 70th
percentile (sound states fill about a quarter of a cycle). S1 and S2 are then told apart by
timing alone — systole is shorter than diastole at any heart rate below ~150 bpm — which is
also what a clinician does. The model works at 50 frames per second; recordings longer than
a minute are segmented in 30 s stretches, each with its own heart rate. The envelope is the
25–400 Hz level, or, where the quality check found the beat only in the bands above a
phone's low cut or rumble, its beat-weighted level (``auscult.quality``).

Validated on synthetic beats with known S1 times (tests/test_cycles.py) and checked on real
PhysioNet 2016 recordings (heart rate against the autocorrelation estimate).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np

from auscult.quality import (
    ENVELOPE_RATE,
    MAX_BPM,
    MIN_BPM,
    autocorrelation,
    level_heart_rate,
    noise_floor,
    smooth_log_level,
    sound_levels,
)

__all__ = [
    "FRAME_RATE",
    "Cycles",
    "complete_cycles",
    "cycle_timing",
    "gap_levels",
    "segment_cycles",
]

FRAME_RATE = ENVELOPE_RATE  # frames per second of the levels (quality.sound_levels) decoded
S1, SYSTOLE, S2, DIASTOLE = range(4)
#: Sound-state durations (mean, standard deviation) in seconds, from Springer et al. (2016).
_S1_S = (0.122, 0.022)
_S2_S = (0.094, 0.022)
_SYSTOLE_SD_S = 0.025
_STRETCH_S = 30.0  # longer recordings are decoded stretch by stretch
#: Within a stretch, overlapping lanes of 8 s are decoded side by side (one numpy step per
#: frame for all of them) and stitched where neighbours agree inside their 1 s overlaps.
_LANE_S, _LANE_OVERLAP_S = 5.0, 1.0
_MIN_BEATS = 2  # fewer complete cycles give no rate or durations


@dataclass(frozen=True)
class Cycles:
    """S1/S2 positions and the timing read from them; empty when no beat could be followed."""

    s1_times_s: tuple[float, ...]  # centre of each S1, seconds from the start
    s2_times_s: tuple[float, ...]  # centre of each S2
    heart_rate_bpm: float | None  # 60 / typical S1-to-S1 interval (see _typical)
    systole_ms: float | None  # median S1 centre → S2 centre within a cycle
    diastole_ms: float | None  # median S2 centre → next S1 centre
    #: Frame states at FRAME_RATE (0 S1, 1 systole, 2 S2, 3 diastole) for shading plots.
    states: np.ndarray
    #: Median ratio of mid-systole and mid-diastole level to the S1 level, in the level the
    #: segmentation decoded (quiet gaps ≈ 0.1–0.2; a murmur fills the gap and raises it).
    systolic_level: float | None = None
    diastolic_level: float | None = None
    #: States decoded also where the beat is no more regular than noise (a best guess): what
    #: the heart-cycle features read, so that every recording has them (all -1 when none).
    evidence_states: np.ndarray | None = None

    @property
    def beats(self) -> int:
        return len(self.s1_times_s)


def _log_envelope(levels: np.ndarray) -> np.ndarray:
    """Log of the 50 Hz level :func:`segment_cycles` decodes, lightly smoothed."""
    if len(levels) == 0:
        return np.zeros(0)
    return smooth_log_level(np.log(levels + 1e-4 * (float(levels.max()) + 1e-12)))


def _sound_probability(log_env: np.ndarray) -> np.ndarray:
    """Per-frame probability of a heart sound (S1 or S2), from the envelope's own spread."""
    q50, q70, q90 = np.percentile(log_env, (50, 70, 90))
    spread = max(q90 - q50, 1e-6)
    return 1.0 / (1.0 + np.exp(-4.0 * (log_env - q70) / spread))


def cycle_timing(env: np.ndarray, bpm: float | None = None) -> tuple[float, float, bool] | None:
    """(cycle, systolic interval, regular) from the envelope's autocorrelation (Schmidt).

    The cycle (seconds) is the lag of the first autocorrelation peak in the heart-rate range
    within 80 % of the highest (which may sit at two beats), or ``60 / bpm`` when a rate is
    known; the systolic interval (S1 onset → S2 onset) the highest peak between 0.2 s and
    half a cycle. ``regular`` is False when, with no rate given, the autocorrelation in the
    heart-rate range stays below what noise of that length reaches
    (``auscult.quality.noise_floor``): the timing is then the best guess, good for features
    that must exist for every recording, not for showing beats. None for a flat or too
    short envelope.
    """
    if len(env) < 2 or np.ptp(env) < 1e-6:
        return None  # silence or a constant: nothing beats
    ac = autocorrelation(env)
    lo, hi = int(FRAME_RATE * 60 / MAX_BPM), int(FRAME_RATE * 60 / MIN_BPM)
    regular = True
    if bpm is not None:
        cycle_frames = FRAME_RATE * 60.0 / bpm
    else:
        if len(ac) <= hi // 2 + 2:
            return None
        segment = ac[: min(hi, len(ac) - 1)]
        peaks = lo + np.flatnonzero(
            (segment[lo:-1] >= segment[lo - 1 : -2]) & (segment[lo:-1] > segment[lo + 1 :])
        )
        if not len(peaks):
            regular = False
            peaks = np.array([lo + int(np.argmax(segment[lo:]))])
        if ac[peaks].max() < noise_floor(len(env) / FRAME_RATE):
            regular = False  # noise: no repeating beat to follow
        # the highest peak may sit at two beats; the first one near its height is the beat
        heights = ac[peaks]
        near_top = heights >= heights.max() - 0.2 * abs(heights.max())
        cycle_frames = float(peaks[near_top][0] if near_top.any() else peaks[np.argmax(heights)])
    top = int(cycle_frames / 2)
    first = int(0.2 * FRAME_RATE)
    if top <= first + 1 or top >= len(ac):
        systole_frames = 0.35 * cycle_frames
    else:
        systole_frames = float(first + int(np.argmax(ac[first:top])))
    return cycle_frames / FRAME_RATE, systole_frames / FRAME_RATE, regular


def _durations(cycle_s: float, systole_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-state duration log-likelihoods over 1…D frames, with their min and max (frames)."""
    mean_systole = max(systole_s - _S1_S[0], 0.05)
    mean_diastole = max(cycle_s - systole_s - _S2_S[0], 0.08)
    means = np.array([_S1_S[0], mean_systole, _S2_S[0], mean_diastole]) * FRAME_RATE
    sds = np.array([_S1_S[1], _SYSTOLE_SD_S, _S2_S[1], 0.07 * mean_diastole + 0.006]) * FRAME_RATE
    spread = sds + np.array([0.0, sds[0], 0.0, 0.0])
    low = np.maximum(np.floor(means - 3 * spread), 1).astype(int)
    high = np.maximum(np.ceil(means + 3 * spread), low + 1).astype(int)
    d = np.arange(1, int(high.max()) + 1)
    log_p = -0.5 * ((d[None, :] - means[:, None]) / sds[:, None]) ** 2
    log_p[(d[None, :] < low[:, None]) | (d[None, :] > high[:, None])] = -np.inf
    return log_p, low, high


def _viterbi(log_emission: np.ndarray, log_duration: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Most likely frame states of a cyclic four-state HSMM (S1 → sys → S2 → dia → S1).

    ``log_emission`` is ``(L, T, 4)``: L independent lanes of T frames, decoded together
    (one numpy step per frame serves every lane). ``log_duration`` is ``(4, D)`` for
    durations 1…D frames. The first and last segments may be cut short by the lane's edges:
    they pay no duration cost. Returns ``(L, T)`` state indices.
    """
    lanes, n_frames, _ = log_emission.shape
    depth = log_duration.shape[1]
    # Rows are frames; columns are state-major, lane-minor (state j, lane i at j * L + i), so
    # each frame's step is a handful of calls on contiguous rows.
    cum = np.zeros((n_frames + 1, 4, lanes))
    np.cumsum(log_emission.transpose(1, 2, 0), axis=0, out=cum[1:])
    cum = cum.reshape(n_frames + 1, 4 * lanes)
    dur_rev = np.repeat(log_duration.T[::-1], lanes, axis=1)  # row i: duration D - i
    first_ok = np.arange(1, depth + 1)[:, None] <= high[None, :]  # (D, 4)
    # row t - 1: a first segment, t frames long, that began before the lane did
    first = np.repeat(np.where(first_ok, np.log(0.25), -np.inf), lanes, axis=1)
    delta = np.full((n_frames + 1, 4 * lanes), -np.inf)
    entered = np.full((n_frames + 1, 4 * lanes), -np.inf)  # delta of the state before − cum
    # which of the candidate starts won at each frame: its duration is reach − row
    won = np.zeros((n_frames + 1, 4 * lanes), dtype=np.intp)
    best = np.empty(4 * lanes)
    for t in range(1, n_frames + 1):
        reach = min(t, depth)
        # the segment began at t - reach … t - 1, i.e. durations reach … 1; cum[t] is the
        # same for all of them, so it is added after the max (rounding keeps the order)
        score = entered[t - reach : t] + dur_rev[depth - reach :]
        if t <= depth:
            score[0] = first[t - 1]
        np.maximum.reduce(score, axis=0, out=best)
        score.argmax(axis=0, out=won[t])  # the first of equal scores: the longest duration
        row, c = delta[t], cum[t]
        np.add(best, c, out=row)
        # S1 is entered from diastole, every other state from the one before it
        np.subtract(row[3 * lanes :], c[:lanes], out=entered[t, :lanes])
        np.subtract(row[: 3 * lanes], c[lanes:], out=entered[t, lanes:])
    reach = np.minimum(np.arange(n_frames + 1), depth)
    return _backtrack(delta, cum, reach[:, None] - won, high, depth)


def _backtrack(
    delta: np.ndarray, cum: np.ndarray, duration: np.ndarray, high: np.ndarray, depth: int
) -> np.ndarray:
    """Every lane's state path from the forward pass of :func:`_viterbi`: the best last
    segment, then segment by segment back along the winning durations it kept
    (``duration[t, state * L + lane]``: the length of the best segment of that state
    ending at frame t; ``depth``: the longest duration scored). An unreachable state —
    every score -inf — took the oldest start.
    """
    n_frames = len(delta) - 1
    lanes = delta.shape[1] // 4
    prev = (DIASTOLE, S1, SYSTOLE, S2)
    state_d = delta.reshape(n_frames + 1, 4, lanes)
    state_cum = cum.reshape(n_frames + 1, 4, lanes)
    # The last segment may be cut short by the lane's end: it pays no duration cost.
    d = np.arange(1, depth + 1)
    start = np.maximum(n_frames - d, 0)
    base = np.where((n_frames - d == 0)[:, None, None], np.log(0.25), state_d[start][:, list(prev)])
    base = base.transpose(1, 0, 2)  # (state, duration, lane)
    total = base + state_cum[n_frames][:, None] - state_cum[start].transpose(1, 0, 2)
    total[~((d[None, :] <= high[:, None]) & (d[None, :] <= n_frames))] = -np.inf
    last = total.reshape(4 * depth, lanes).argmax(axis=0)  # the first state, then duration
    paths = np.empty((lanes, n_frames), dtype=np.int8)
    for lane in range(lanes):
        state, length = int(last[lane] // depth), int(last[lane] % depth + 1)
        t = n_frames
        while True:
            paths[lane, t - length : t] = state
            t -= length
            if t <= 0:
                break
            state = prev[state]
            length = int(duration[t, state * lanes + lane])
    return paths


def _lanes(n_frames: int) -> list[int]:
    """Start frames of overlapping lanes of _LANE_S covering n frames (one lane if shorter)."""
    width, core = int(_LANE_S * FRAME_RATE), int((_LANE_S - 2 * _LANE_OVERLAP_S) * FRAME_RATE)
    if n_frames <= width:
        return [0]
    starts = list(range(0, n_frames - width, core))
    return [*starts, n_frames - width]


def _stitch(paths: np.ndarray, starts: list[int], n_frames: int) -> np.ndarray:
    """One state path from overlapping lanes: each seam where both lanes agree, nearest the
    middle of their overlap (at its middle when they never agree)."""
    width = paths.shape[1]
    out = np.empty(n_frames, dtype=np.int8)
    cut = 0
    for i, start in enumerate(starts):
        end = start + width
        if i + 1 < len(starts):
            nxt = starts[i + 1]
            overlap_a, overlap_b = paths[i, nxt - start :], paths[i + 1, : end - nxt]
            agree = np.flatnonzero(overlap_a == overlap_b)
            middle = (end - nxt) // 2
            seam = nxt + (int(agree[np.argmin(np.abs(agree - middle))]) if len(agree) else middle)
        else:
            seam = n_frames
        out[cut:seam] = paths[i, cut - start : seam - start]
        cut = seam
    return out


def _segments(states: np.ndarray, state: int) -> list[tuple[int, int]]:
    """(start, end) frames of each run of ``state``."""
    mask = np.concatenate([[False], states == state, [False]])
    edges = np.flatnonzero(np.diff(mask.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _decode(log_env: np.ndarray, bpm: float | None) -> tuple[np.ndarray, bool] | None:
    """States of one stretch and whether its beat is regular; None when nothing beats."""
    timing = cycle_timing(log_env, bpm)
    if timing is None:
        return None
    cycle_s, systole_s, regular = timing
    log_duration, _, high = _durations(cycle_s, systole_s)
    p = np.clip(_sound_probability(log_env), 1e-3, 1 - 1e-3)
    emission = np.column_stack([np.log(p), np.log1p(-p), np.log(p), np.log1p(-p)])
    starts = _lanes(len(emission))
    width = min(len(emission), int(_LANE_S * FRAME_RATE))
    lanes = np.stack([emission[s : s + width] for s in starts])
    return _stitch(_viterbi(lanes, log_duration, high), starts, len(emission)), regular


def segment_cycles(
    band: np.ndarray, rate: int, bpm: float | None = None, levels: np.ndarray | None = None
) -> Cycles:
    """Find S1 and S2 in a band-limited heart-sound signal (``ModelInput.band``).

    Parameters
    ----------
    band : numpy.ndarray
        ``(n_samples,)`` band-limited signal at ``rate`` Hz (at least 1 kHz).
    rate : int
        Its sample rate.
    bpm : float, optional
        A heart rate already known (e.g. from the quality check); read from the envelope
        when not given. Only used for recordings of one stretch (≤ 60 s); each stretch of a
        longer one has its rate read from its own level
        (``auscult.quality.level_heart_rate``), or from the envelope when that finds none.
    levels : numpy.ndarray, optional
        The 50 Hz level to decode: ``auscult.quality.sound_levels(band, rate)`` (the
        default) when already computed, or ``auscult.quality.beat_weighted_levels`` where
        the beat shows only there (see ``auscult.cycle_features.read_heart_cycle``).

    Returns
    -------
    Cycles
        Times, rate and durations only from stretches with a regular beat, and only when
        they hold two complete cycles; ``evidence_states`` also from stretches decoded on a
        best guess (features must exist for every recording; see :func:`cycle_timing`).
    """
    levels = sound_levels(band, rate) if levels is None else levels
    log_env = _log_envelope(levels)
    n = len(log_env)
    shown = np.full(n, -1, dtype=np.int8)
    evidence = np.full(n, -1, dtype=np.int8)
    stretch = int(_STRETCH_S * FRAME_RATE)
    bounds = [(0, n)]
    if n > 2 * stretch:  # stretches of 30 s; a last piece under 3 s is left undecoded
        bounds = [(s, min(s + stretch, n)) for s in range(0, n, stretch)]
        bounds = [(a, b) for a, b in bounds if b - a > 3 * FRAME_RATE]
    for a, b in bounds:
        # each stretch's rate read as the quality check reads a recording's: the envelope's
        # own autocorrelation over 30 s can peak at S1→S2 on a poor recording
        stretch_bpm = bpm if len(bounds) == 1 else level_heart_rate(levels[a:b])
        decoded = _decode(log_env[a:b], stretch_bpm)
        if decoded is not None:
            evidence[a:b] = decoded[0]
            if decoded[1]:
                shown[a:b] = decoded[0]
    if len(complete_cycles(evidence)) < _MIN_BEATS:
        evidence[:] = -1
    return dataclasses.replace(_read_cycles(shown, log_env), evidence_states=evidence)


def complete_cycles(states: np.ndarray) -> list[tuple[tuple[int, int], ...]]:
    """Each whole decoded cycle as frame runs (S1, S2, next S1), in order.

    A cycle counts when one S2 lies between consecutive S1s and their distance is a heart
    period (35–200 bpm); a break in the rhythm (a stretch edge, a lost beat) is skipped.
    """
    s1_runs, s2_runs = _segments(states, S1), _segments(states, S2)
    cycles = []
    j = 0
    for run, nxt in itertools.pairwise(s1_runs):
        while j < len(s2_runs) and s2_runs[j][0] < run[1]:
            j += 1
        if j == len(s2_runs) or s2_runs[j][1] > nxt[0]:
            continue
        period = (nxt[0] + nxt[1] - run[0] - run[1]) / 2
        if 60 / MAX_BPM * FRAME_RATE <= period <= 60 / MIN_BPM * FRAME_RATE:
            cycles.append((run, s2_runs[j], nxt))
    return cycles


def _centre(run: tuple[int, int]) -> float:
    return (run[0] + run[1]) / 2


def gap_levels(
    level: np.ndarray, cycles: list[tuple[tuple[int, int], ...]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cycle: S2, mid-systole and mid-diastole level, each relative to the cycle's S1.

    ``level`` is a non-negative frame level, ``(n_frames,)`` or one row per band
    ``(n_bands, n_frames)``; a run's level is its mean, a gap's the mean over its middle
    60 %. Returns three arrays of shape ``(n_cycles,)`` or ``(n_bands, n_cycles)`` (NaN where
    a gap is too short or S1 is silent).
    """
    level = np.asarray(level, dtype=np.float64)
    if not len(cycles):
        empty = np.zeros((*level.shape[:-1], 0))
        return empty, empty, empty
    runs = np.array(cycles, dtype=np.int64)  # (n, 3, 2): S1, S2, next S1 as (start, end)
    runs = np.minimum(runs, level.shape[-1])
    gaps = np.stack([runs[:, 0, 1], runs[:, 1, 0], runs[:, 1, 1], runs[:, 2, 0]], axis=1)
    span = gaps[:, 1::2] - gaps[:, 0::2]  # systole, diastole lengths
    inner_a = gaps[:, 0::2] + (0.2 * span).astype(np.int64)
    inner_b = gaps[:, 1::2] - (0.2 * span).astype(np.int64)
    prefix = np.zeros((*level.shape[:-1], level.shape[-1] + 1))
    np.cumsum(level, axis=-1, out=prefix[..., 1:])

    def mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.where(b > a, (prefix[..., b] - prefix[..., np.minimum(a, b)]) / (b - a), np.nan)

    with np.errstate(invalid="ignore", divide="ignore"):
        s1 = mean(runs[:, 0, 0], runs[:, 0, 1])
        s1 = np.where(s1 > 0, s1, np.nan)
        return (
            mean(runs[:, 1, 0], runs[:, 1, 1]) / s1,
            mean(inner_a[:, 0], inner_b[:, 0]) / s1,
            mean(inner_a[:, 1], inner_b[:, 1]) / s1,
        )


def _read_cycles(states: np.ndarray, log_env: np.ndarray) -> Cycles:
    """Times, rate, durations and gap levels from decoded frame states."""
    cycles = complete_cycles(states)
    if len(cycles) < _MIN_BEATS:
        return Cycles((), (), None, None, None, np.full(len(states), -1, dtype=np.int8))
    to_s = 1.0 / FRAME_RATE
    s1 = [_centre(run) * to_s for run in _segments(states, S1)]
    s2 = [_centre(run) * to_s for run in _segments(states, S2)]
    periods = [_centre(nxt) - _centre(a) for a, _, nxt in cycles]
    systoles = [_centre(b) - _centre(a) for a, b, _ in cycles]
    _, systolic, diastolic = gap_levels(np.exp(log_env - log_env.max()), cycles)
    return Cycles(
        s1_times_s=tuple(round(t, 3) for t in s1),
        s2_times_s=tuple(round(t, 3) for t in s2),
        heart_rate_bpm=60.0 * FRAME_RATE / _typical(np.array(periods)),
        systole_ms=1000.0 * to_s * float(np.median(systoles)),
        diastole_ms=1000.0 * to_s * float(np.median(np.subtract(periods, systoles))),
        states=states,
        systolic_level=_nanmedian(systolic),
        diastolic_level=_nanmedian(diastolic),
    )


def _typical(periods: np.ndarray) -> float:
    """Mean of the periods within 20 % of their median: whole frames average out to a
    finer rate than the median's 20 ms steps, and a lost or extra beat is left out. With
    none that close (an even count split between two rates) the median itself."""
    median = float(np.median(periods))
    near = periods[np.abs(periods - median) <= 0.2 * median]
    return float(near.mean()) if len(near) else median


def _nanmedian(values: np.ndarray) -> float | None:
    kept = values[np.isfinite(values)]
    return float(np.median(kept)) if len(kept) else None
