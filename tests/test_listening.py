"""Listening: any recording becomes a WAV browsers play; the bell keeps heart sounds only."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from auscult.listening import playable_wav


def _band_power(x: np.ndarray, rate: int, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    return float(spectrum[(freqs >= low) & (freqs < high)].sum())


def test_a_2khz_flac_becomes_an_8khz_wav(soundfile_bytes, heart_8k):
    from scipy.signal import resample_poly

    x = resample_poly(heart_8k, 1, 4).astype(np.float32)  # 2 kHz, as PhysioNet stores it
    wav = playable_wav(soundfile_bytes(x, 2000, "FLAC"))
    info = sf.info(io.BytesIO(wav))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 8000, 1)
    assert abs(info.duration - len(x) / 2000) < 0.01


def test_wide_band_phone_audio_plays_at_16khz_and_loud_enough(wav_bytes, heart_8k):
    from scipy.signal import resample_poly

    quiet = (0.01 * resample_poly(heart_8k, 6, 1)).astype(np.float32)  # 48 kHz, very quiet
    audio, rate = sf.read(io.BytesIO(playable_wav(wav_bytes(quiet, 48000))))
    assert rate == 16000
    assert 0.85 < np.max(np.abs(audio)) <= 0.91


def test_the_bell_removes_hiss_above_400_hz(wav_bytes, heart_8k):
    rng = np.random.default_rng(0)
    hissy = (heart_8k + 0.05 * rng.standard_normal(len(heart_8k))).astype(np.float32)
    plain, rate = sf.read(io.BytesIO(playable_wav(wav_bytes(hissy, 8000))))
    bell, _ = sf.read(io.BytesIO(playable_wav(wav_bytes(hissy, 8000), bell=True)))
    hiss = _band_power(bell, rate, 800, 3000) / _band_power(bell, rate, 25, 400)
    plain_hiss = _band_power(plain, rate, 800, 3000) / _band_power(plain, rate, 25, 400)
    assert hiss < plain_hiss / 100
