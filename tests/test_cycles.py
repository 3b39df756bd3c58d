"""Heart-cycle segmentation finds S1 and S2 where they are, and nothing where there is no beat."""

from __future__ import annotations

import numpy as np
import pytest

from auscult.cycle_features import cycle_features, low_band_left_out, murmur_phase
from auscult.cycles import FRAME_RATE, complete_cycles, segment_cycles
from auscult.synthetic import beat_times, heart_sound, noise, systole_s

RATE = 2000
S1_CENTRE_S = 0.035  # the synthetic S1's bursts peak 24–44 ms after its onset


def f1_within(found, truth, tolerance_s: float = 0.1) -> float:
    """F1 of detected times against true ones, each truth matched at most once."""
    unmatched = list(found)
    hits = 0
    for t in truth:
        near = [f for f in unmatched if abs(f - t) <= tolerance_s]
        if near:
            hits += 1
            unmatched.remove(min(near, key=lambda f: abs(f - t)))
    if not hits:
        return 0.0
    precision, recall = hits / len(found), hits / len(truth)
    return 2 * precision * recall / (precision + recall)


@pytest.mark.parametrize("bpm", [48, 72, 100, 130, 160])
@pytest.mark.parametrize("snr_db", [None, 10, 0])
def test_s1_and_s2_are_found_at_any_rest_or_exercise_rate(bpm, snr_db):
    x = heart_sound(30, RATE, bpm=bpm, noise_snr_db=snr_db, seed=bpm)
    s1_truth = beat_times(30, bpm, seed=bpm) + S1_CENTRE_S
    cycles = segment_cycles(x, RATE)
    assert f1_within(cycles.s1_times_s, s1_truth) >= 0.95
    assert f1_within(cycles.s2_times_s, s1_truth + systole_s(bpm)) >= 0.95
    assert cycles.heart_rate_bpm == pytest.approx(bpm, abs=3)
    assert cycles.systole_ms == pytest.approx(1000 * systole_s(bpm), abs=40)
    assert cycles.systole_ms + cycles.diastole_ms == pytest.approx(60000 / bpm, rel=0.05)


def test_a_systolic_murmur_is_placed_in_systole():
    quiet_sound = heart_sound(20, RATE, bpm=72, seed=3)
    murmur_sound = heart_sound(20, RATE, bpm=72, murmur=True, seed=3)
    quiet, murmur = segment_cycles(quiet_sound, RATE), segment_cycles(murmur_sound, RATE)
    assert murmur.systolic_level > 3 * quiet.systolic_level + 0.1
    assert murmur.diastolic_level < 0.1
    assert murmur_phase(cycle_features(quiet_sound, RATE, quiet)) == ""
    assert murmur_phase(cycle_features(murmur_sound, RATE, murmur)) == "systolic"
    silent = cycle_features(np.zeros(5 * RATE), RATE, segment_cycles(np.zeros(5 * RATE), RATE))
    assert np.isnan(silent).all()
    assert murmur_phase(silent) == ""


def test_a_device_that_missed_the_lowest_band_has_that_band_left_out_not_read_as_a_murmur():
    from scipy import signal as sps

    x = heart_sound(20, RATE, bpm=72, seed=3)
    full = cycle_features(x, RATE, segment_cycles(x, RATE))
    assert not low_band_left_out(full)
    assert np.isfinite(full[:2]).all()  # S2 and systole at 25–80 Hz measured
    gentle = sps.sosfilt(sps.butter(2, 100, "highpass", fs=RATE, output="sos"), x)
    assert not low_band_left_out(cycle_features(gentle, RATE, segment_cycles(gentle, RATE)))
    phone = sps.sosfilt(sps.butter(3, 150, "highpass", fs=RATE, output="sos"), x)
    cut = cycle_features(phone, RATE, segment_cycles(phone, RATE))
    assert low_band_left_out(cut)
    assert np.isnan(cut[:3]).all()
    assert np.isfinite(cut[3:]).all()


def test_noise_shows_no_beats_but_still_has_best_guess_features_as_in_training():
    x = noise(20, RATE, seed=1)
    cycles = segment_cycles(x, RATE)
    assert cycles.beats == 0  # nothing is drawn or counted as a beat
    assert (cycles.evidence_states >= 0).any()  # the features read a best guess


@pytest.mark.parametrize("seconds", [5, 20, 60])
@pytest.mark.parametrize("band", [None, (20.0, 1000.0), (25.0, 150.0)])
def test_noise_and_silence_give_no_heart_cycles(seconds, band):
    for seed in range(3):
        cycles = segment_cycles(noise(seconds, RATE, seed=seed, band_hz=band), RATE)
        assert cycles.beats == 0
        assert cycles.heart_rate_bpm is None
    assert segment_cycles(np.zeros(seconds * RATE), RATE).s1_times_s == ()


def test_a_short_recording_needs_two_whole_cycles():
    assert segment_cycles(heart_sound(3, RATE, bpm=60, seed=5), RATE).heart_rate_bpm == (
        pytest.approx(60, abs=3)
    )
    assert segment_cycles(heart_sound(1.5, RATE, bpm=60, seed=5), RATE).beats == 0


def test_a_long_recording_follows_a_changing_rate_stretch_by_stretch():
    slow, fast = heart_sound(90, RATE, bpm=60, seed=1), heart_sound(90, RATE, bpm=110, seed=2)
    cycles = segment_cycles(np.concatenate([slow, fast]), RATE)
    s1 = np.array(cycles.s1_times_s)
    assert len(s1[s1 < 90]) == pytest.approx(90, abs=4)
    assert len(s1[s1 >= 90]) == pytest.approx(165, abs=6)
    assert len(cycles.states) == 180 * FRAME_RATE


def test_every_complete_cycle_runs_s1_s2_s1_in_order():
    cycles = segment_cycles(heart_sound(20, RATE, bpm=80, seed=7), RATE)
    runs = complete_cycles(cycles.states)
    assert len(runs) >= 20
    for s1, s2, nxt in runs:
        assert s1[1] <= s2[0], "S2 starts after S1 ends"
        assert s2[1] <= nxt[0], "the next S1 starts after S2 ends"
