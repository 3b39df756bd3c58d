"""The simulated phone channel: seeded, at the asked SNR, decodable as a phone upload."""

from __future__ import annotations

import numpy as np
import pytest

import utils
from auscult import synthetic
from auscult.phone_channel import (
    PHONE_RATE,
    PhoneChannel,
    apply_channel,
    band_power,
    noise_only,
    random_channel,
)


def test_channel_output_decodes_like_a_phone_upload():
    heart = synthetic.heart_sound(12.0, 2000, seed=2)
    rng = np.random.default_rng(0)
    data = apply_channel(heart, 2000, random_channel(rng, 10.0), rng)
    rec = utils.load_audio(data)
    assert rec.sample_rate == PHONE_RATE
    assert rec.duration_s == pytest.approx(12.0, abs=0.1)


def test_the_same_seed_gives_the_same_recording():
    heart = synthetic.heart_sound(6.0, 2000, seed=2)
    one = apply_channel(heart, 2000, random_channel(np.random.default_rng(5), 5.0),
                        np.random.default_rng(5))  # fmt: skip
    two = apply_channel(heart, 2000, random_channel(np.random.default_rng(5), 5.0),
                        np.random.default_rng(5))  # fmt: skip
    assert one == two


@pytest.mark.parametrize("snr_db", [20.0, 5.0])
def test_noise_is_added_at_the_asked_snr(snr_db):
    """Measured in the 25–950 Hz band on the decoded file, against the same channel clean."""
    heart = synthetic.heart_sound(12.0, 2000, seed=3)
    plain = PhoneChannel(None, "room", 120.0, agc=False, limiter=False, container="webm")
    noisy = PhoneChannel(snr_db, "room", 120.0, agc=False, limiter=False, container="webm")
    clean = utils.load_audio(apply_channel(heart, 2000, plain, np.random.default_rng(1))).samples
    mixed = utils.load_audio(apply_channel(heart, 2000, noisy, np.random.default_rng(1))).samples
    n = min(len(clean), len(mixed))
    gain = np.dot(mixed[:n], clean[:n]) / np.dot(clean[:n], clean[:n])
    residual = mixed[:n] / gain - clean[:n]
    measured = 10 * np.log10(band_power(clean[:n], PHONE_RATE) / band_power(residual, PHONE_RATE))
    assert measured == pytest.approx(snr_db, abs=2.0)


@pytest.mark.parametrize("kind", ["speech", "rubbing", "room", "handling", "music", "feedback"])
def test_noise_only_recordings_hold_no_heartbeat(kind):
    from auscult.quality import assess_quality

    rec = utils.load_audio(noise_only(kind, 15.0, np.random.default_rng(3)))
    mi = utils.model_input(rec)
    q = assess_quality(mi.band, 2000, rec.clip_fraction, mi.high_band_share)
    assert q.score < 0.35
