"""The audio front end: what reaches the model, and every way a recording can be unusable."""

from __future__ import annotations

import dataclasses
import io
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import utils
from auscult import synthetic
from auscult.errors import AuscultError, InvalidAudioError
from config import Settings

RATE = 8000
BAND = Settings().band_rate  # Hz of the prepared signal (2 kHz)
#: Degenerate input must fail with our message, never with a NumPy/SciPy warning on the way.
degenerate = pytest.mark.filterwarnings("error")


def band_energy(x: np.ndarray, rate: int, low_hz: float, high_hz: float) -> float:
    """Energy of ``x`` between ``low_hz`` and ``high_hz`` (rectangular band, via the FFT)."""
    spectrum = np.abs(np.fft.rfft(np.asarray(x, dtype=np.float64))) ** 2
    hz = np.fft.rfftfreq(len(x), 1.0 / rate)
    return float(spectrum[(hz >= low_hz) & (hz < high_hz)].sum())


def tone_left_db(heart: np.ndarray, tone: np.ndarray, rate: int) -> float:
    """How much of ``tone`` (dB of its amplitude) reaches the prepared signal of
    ``heart + tone``: what differs from the heart sound's own prepared signal, at the same
    scale, wherever it landed in the band."""
    y = utils.prepare_signal(heart + tone, rate)
    reference = utils.prepare_signal(heart, rate)
    gain = np.dot(reference, y) / np.dot(reference, reference)
    left = np.sqrt(2) * np.std(y / gain - reference)
    return 20 * np.log10(left / np.abs(tone).max())


def heart_at(rate: int, seconds: float = 20.0, **kwargs) -> np.ndarray:
    """The same synthetic heart sound (seed 1), sampled at ``rate``."""
    return synthetic.heart_sound(seconds, rate, seed=1, **kwargs)


def recording(x: np.ndarray, rate: int) -> utils.Recording:
    return utils.Recording(samples=np.asarray(x, dtype=np.float32), sample_rate=rate, channels=1)


# --------------------------------------------------------------------------------------
# band limit and resampling
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("murmur", [False, True], ids=["normal", "murmur"])
def test_heart_sound_keeps_its_band_through_prepare_signal(murmur):
    x = heart_at(BAND, murmur=murmur)
    y = utils.prepare_signal(heart_at(RATE, murmur=murmur), RATE)

    assert y.shape == x.shape
    assert y.dtype == np.float32
    # Heart sounds and murmurs live in 20–400 Hz (murmur up to 500): the band limit keeps
    # essentially all of that energy, in the same shape (only the scale changes).
    top = 500.0 if murmur else 400.0
    assert band_energy(y, BAND, 20.0, top) / band_energy(y, BAND, 0.0, BAND / 2) > 0.97
    gain = np.dot(x, y) / np.dot(x, x)
    kept = band_energy(y, BAND, 20.0, top) / (gain**2 * band_energy(x, BAND, 20.0, top))
    assert kept == pytest.approx(1.0, abs=0.05)
    assert np.corrcoef(x, y)[0, 1] > 0.97


@pytest.mark.parametrize("rate", [8000, 44100])
def test_tone_above_the_band_is_removed(rate):
    """PhysioNet holds nothing above 1 kHz; a 2 kHz whistle must not reach the model."""
    tone = 0.2 * np.sin(2 * np.pi * 2000.0 * np.arange(int(20 * rate)) / rate)

    assert tone_left_db(heart_at(rate), tone, rate) < -40


def test_tone_above_the_new_nyquist_does_not_alias_into_the_band():
    """A 7.1 kHz tone at 44.1 kHz would fold to 0.9 kHz at 2 kHz without anti-aliasing."""
    rate = 44100
    tone = 0.2 * np.sin(2 * np.pi * 7100.0 * np.arange(20 * rate) / rate)

    assert tone_left_db(heart_at(rate), tone, rate) < -40


@pytest.mark.parametrize("rate", [4000, 44100, 48000])
def test_same_sound_at_any_rate_gives_the_same_model_input(rate):
    at_8k = utils.model_input(recording(heart_at(RATE, murmur=True), RATE))
    other = utils.model_input(recording(heart_at(rate, murmur=True), rate))

    assert other.windows.shape == at_8k.windows.shape
    np.testing.assert_allclose(other.window_starts_s, at_8k.window_starts_s)
    assert np.corrcoef(other.windows.ravel(), at_8k.windows.ravel())[0, 1] > 0.999
    # windows are in units of 10 dB: a median difference under 0.01 is under 0.1 dB
    assert np.median(np.abs(other.windows - at_8k.windows)) < 0.01
    assert np.corrcoef(other.band, at_8k.band)[0, 1] > 0.999


def test_model_input_shapes_follow_the_settings(settings):
    mi = utils.model_input(recording(heart_at(RATE), RATE), settings)

    n_frames = 1 + 20 * RATE // settings.hop_length
    assert mi.features.shape == (settings.n_mels, n_frames)
    assert mi.windows.shape[1:] == (settings.n_mels, settings.window_frames)
    assert mi.windows.dtype == np.float32
    assert len(mi.window_starts_s) == len(mi.windows)
    assert mi.band.shape == (20 * settings.band_rate,)
    assert not mi.padded


# --------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------
def librosa_log_mel_8khz(x: np.ndarray, s: Settings) -> np.ndarray:
    """librosa's log-mel (dB) of a prepared 2 kHz signal brought to 8 kHz."""
    librosa = pytest.importorskip("librosa")
    power = librosa.feature.melspectrogram(
        y=utils.resample(x, s.band_rate, s.sample_rate),
        sr=s.sample_rate,
        n_fft=s.n_fft,
        hop_length=s.hop_length,
        win_length=s.win_length,
        window="hann",
        center=True,
        pad_mode="reflect",
        power=2.0,
        n_mels=s.n_mels,
        fmin=s.mel_fmin,
        fmax=s.mel_fmax,
        htk=False,
        norm="slaney",
    )
    return librosa.power_to_db(power, ref=1.0, top_db=s.top_db)


def test_log_mel_from_8khz_samples_matches_librosa():
    s = dataclasses.replace(Settings(), log_mel_rate=8000)
    x = utils.prepare_signal(heart_at(RATE, murmur=True, noise_snr_db=10.0), RATE)

    expected = librosa_log_mel_8khz(x, s)
    ours = utils.log_mel_db(x, s)

    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=0.01)  # dB


def test_log_mel_from_2khz_samples_is_the_8khz_log_mel():
    """Same frames, bins and dB levels from a quarter of the samples; only the top band,
    where the 8 kHz copy's upsampler rolls off, and the two edge frames (padding) differ."""
    s = Settings()
    x = utils.prepare_signal(heart_at(RATE, murmur=True, noise_snr_db=10.0), RATE)

    expected = librosa_log_mel_8khz(x, s)[:, 1:-1]
    ours = utils.log_mel_db(x, s)[:, 1:-1]

    assert ours.shape == expected.shape
    difference = np.abs(ours - expected)  # dB
    assert np.median(difference) < 0.01
    assert difference[:-1].max() < 0.5
    assert difference[-1].max() < 1.5


@pytest.mark.parametrize("rate", [2200, 1000])
def test_a_log_mel_rate_that_splits_a_sample_or_loses_the_band_is_refused(rate):
    with pytest.raises(AuscultError, match=f"log_mel_rate {rate} Hz"):
        utils.stft_lengths(dataclasses.replace(Settings(), log_mel_rate=rate))


def test_mel_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    s = Settings()
    expected = librosa.filters.mel(
        sr=s.sample_rate, n_fft=s.n_fft, n_mels=s.n_mels, fmin=s.mel_fmin, fmax=s.mel_fmax
    )
    ours = utils.mel_filterbank(s.sample_rate, s.n_fft, s.n_mels, s.mel_fmin, s.mel_fmax)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-8)


def test_band_normalisation_cancels_a_fixed_colouring():
    """A device's EQ is a constant dB offset per band; removing band means cancels it."""
    db = utils.log_mel_db(utils.prepare_signal(heart_at(RATE), RATE))
    coloured = db + np.linspace(-12.0, 6.0, db.shape[0])[:, None]
    np.testing.assert_allclose(
        utils.normalise_bands(coloured), utils.normalise_bands(db), atol=1e-5
    )


def test_the_cnn_reads_each_group_of_bands_as_their_mean():
    features = np.random.default_rng(1).standard_normal((32, 50)).astype(np.float32)
    coarse = utils.coarse_bands(features, 4)

    assert coarse.shape == features.shape
    groups = coarse.reshape(8, 4, 50)
    np.testing.assert_allclose(groups, groups[:, :1].repeat(4, axis=1))
    np.testing.assert_allclose(groups[:, 0], features.reshape(8, 4, 50).mean(axis=1), atol=1e-6)
    assert utils.coarse_bands(features, 1) is features
    with pytest.raises(ValueError, match="groups of 5"):
        utils.coarse_bands(features, 5)


def test_model_windows_are_coarse_while_the_plotted_features_keep_every_band():
    s = dataclasses.replace(Settings(), band_group=4)
    mi = utils.model_input(utils.Recording(heart_at(RATE), RATE, 1), s)

    windows = mi.windows.reshape(len(mi.windows), -1, s.band_group, s.window_frames)
    np.testing.assert_allclose(windows, windows[:, :, :1].repeat(s.band_group, axis=2))
    fine = mi.features.reshape(-1, s.band_group, mi.features.shape[1])
    assert not np.allclose(fine, fine[:, :1])


# --------------------------------------------------------------------------------------
# windows
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("seconds", [4.0, 10.0, 21.3, 60.7])
def test_windows_cover_the_whole_recording(seconds):
    s = Settings()
    n_frames = int(seconds * s.sample_rate / s.hop_length)
    features = np.random.default_rng(0).standard_normal((s.n_mels, n_frames)).astype(np.float32)

    windows, starts_s, padded = utils.frame_windows(features, s)

    starts = np.round(starts_s * s.sample_rate / s.hop_length).astype(int)
    assert not padded
    assert starts[0] == 0
    assert starts[-1] + s.window_frames == n_frames  # the last window ends at the end
    assert np.all(np.diff(starts) <= s.window_hop_frames)  # no gap between windows
    assert np.all(np.diff(starts) > 0)
    for window, start in zip(windows, starts, strict=True):
        np.testing.assert_array_equal(window, features[:, start : start + s.window_frames])


def test_short_recording_is_padded_and_flagged():
    s = Settings()
    x = heart_at(RATE, seconds=3.2)  # longer than the 2 s minimum, shorter than a window

    mi = utils.model_input(recording(x, RATE), s)

    assert mi.padded
    assert mi.windows.shape == (1, s.n_mels, s.window_frames)
    np.testing.assert_array_equal(mi.window_starts_s, [0.0])
    # padding repeats the recording instead of adding silence the model never saw
    n = mi.features.shape[1]
    np.testing.assert_array_equal(
        mi.windows[0][:, n : 2 * n], mi.features[:, : s.window_frames - n]
    )


# --------------------------------------------------------------------------------------
# robust normalisation and clipping
# --------------------------------------------------------------------------------------
def test_one_loud_click_does_not_shrink_the_heart_sounds():
    quiet = 0.1 * heart_at(RATE)
    clicked = quiet.copy()
    at = int(10.37 * RATE)
    clicked[at : at + 8] = 1.0  # a 1 ms knock, 13× the loudest heart sound

    plain = utils.prepare_signal(quiet, RATE)
    knocked = utils.prepare_signal(clicked, RATE)

    away = np.ones(len(plain), dtype=bool)
    at = at * BAND // RATE
    away[at - BAND // 5 : at + BAND // 5] = False  # ignore the 0.4 s around the click
    level_plain = np.percentile(np.abs(plain[away]), 99.5)
    level_knocked = np.percentile(np.abs(knocked[away]), 99.5)
    assert level_knocked == pytest.approx(level_plain, rel=0.1)
    assert np.abs(knocked).max() > 3 * level_knocked  # the click is there, just not in charge


def test_clip_is_measured_before_resampling(wav_bytes):
    """Resampling and band-limiting smear flat-topped peaks: count clipping on decode."""
    rate = 44100
    loud = np.clip(4.0 * heart_at(rate), -1.0, 1.0)
    clipped_share = float(np.mean(np.abs(loud) >= 0.999))
    assert clipped_share > 0.02  # the test signal really is clipped

    rec = utils.load_audio(wav_bytes(loud, rate))

    assert rec.clip_fraction == pytest.approx(clipped_share, abs=0.002)
    assert any(f"{clipped_share:.0%} of the samples are clipped" in w for w in rec.warnings)
    # What a count after the front end would see: the flat tops are gone.
    prepared = np.abs(utils.prepare_signal(rec.samples, rate))
    assert np.mean(prepared >= 0.999 * prepared.max()) < clipped_share / 100


@degenerate
def test_heavy_clipping_warns_with_the_percentage(wav_bytes):
    loud = np.clip(20.0 * heart_at(RATE), -1.0, 1.0)

    rec = utils.load_audio(wav_bytes(loud, RATE))

    assert rec.clip_fraction > 0.05
    (warning,) = [w for w in rec.warnings if "clipped" in w]
    assert f"{rec.clip_fraction:.0%}" in warning
    assert "lower the gain" in warning


def test_mild_peaks_do_not_warn(wav_bytes):
    rec = utils.load_audio(wav_bytes(heart_at(RATE), RATE))
    assert rec.warnings == ()
    assert rec.clip_fraction == 0.0


# --------------------------------------------------------------------------------------
# decoding: formats a phone or a laptop produces
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "subtype"),
    [("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")],
    ids=["flac", "ogg-vorbis", "mp3"],
)
def test_flac_ogg_and_mp3_decode_with_soundfile(fmt, subtype, soundfile_bytes, monkeypatch):
    def no_ffmpeg(data):
        raise AssertionError("soundfile should have read this file")

    monkeypatch.setattr(utils, "_decode_pyav", no_ffmpeg)
    x = heart_at(RATE)

    rec = utils.load_audio(soundfile_bytes(x, RATE, fmt, subtype))

    assert rec.sample_rate == RATE
    assert rec.duration_s == pytest.approx(20.0, abs=0.1)
    original = utils.model_input(recording(x, RATE)).windows
    decoded = utils.model_input(rec).windows
    assert np.corrcoef(original.ravel(), decoded.ravel())[0, 1] > 0.98


@pytest.mark.parametrize("container", ["webm", "mp4"], ids=["webm-opus", "m4a-aac"])
def test_phone_formats_decode_with_pyav(container, phone_bytes):
    x = heart_at(RATE)
    data = phone_bytes(x, RATE, container)

    rec = utils.load_audio(data)

    assert rec.duration_s == pytest.approx(20.0, abs=0.1)
    assert rec.channels == 1
    assert rec.warnings == ()
    original = utils.model_input(recording(x, RATE))
    decoded = utils.model_input(rec)
    assert decoded.windows.shape == original.windows.shape
    assert np.corrcoef(original.windows.ravel(), decoded.windows.ravel())[0, 1] > 0.98


def test_phone_recording_cut_off_mid_stream_is_analysed_with_a_warning(phone_bytes):
    data = phone_bytes(heart_at(RATE), RATE, "webm")

    rec = utils.load_audio(data[: len(data) * 6 // 10])  # the header still says 20 s

    assert 8.0 < rec.duration_s < 16.0
    assert any("truncated" in w for w in rec.warnings)


def test_a_whole_raw_aac_stream_is_not_called_truncated(phone_bytes):
    """ADTS has no length field; FFmpeg's estimate from a variable bit rate is not a cut."""
    x = heart_at(48000)
    x[: 8 * 48000] *= 0.001  # a quiet start: the bit rate varies along the file

    rec = utils.load_audio(phone_bytes(x, 48000, "adts"))

    assert rec.duration_s == pytest.approx(20.0, abs=0.1)
    assert rec.warnings == ()


def test_a_path_reads_like_bytes(tmp_path, wav_bytes):
    path = tmp_path / "beat.wav"
    path.write_bytes(wav_bytes(heart_at(RATE), RATE))

    from_path = utils.load_audio(path)
    from_str = utils.load_audio(str(path))
    from_bytes = utils.load_audio(path.read_bytes())

    np.testing.assert_array_equal(from_path.samples, from_bytes.samples)
    np.testing.assert_array_equal(from_str.samples, from_bytes.samples)


def test_a_mono_recordings_variance_measured_while_decoding_gives_the_same_model_input(
    wav_bytes,
):
    rate = 48000
    noisy = heart_at(rate, noise_snr_db=0.0)  # plenty of sound above the heart band
    decoded = utils.load_audio(wav_bytes(noisy, rate))
    assert decoded.variance == pytest.approx(np.var(decoded.samples.astype(np.float64)), rel=1e-5)
    unknown = utils.Recording(decoded.samples, rate, 1)

    measured, computed = utils.model_input(decoded), utils.model_input(unknown)

    assert measured.high_band_share == pytest.approx(computed.high_band_share, abs=1e-6)
    assert measured.high_band_share > 0.1
    np.testing.assert_array_equal(measured.windows, computed.windows)


def test_96_khz_stereo_is_accepted_and_mixed_to_mono_with_a_warning(wav_bytes):
    rate = 96000
    left = heart_at(rate, seconds=5.0)
    stereo = np.stack([left, 0.5 * left], axis=1)

    rec = utils.load_audio(wav_bytes(stereo, rate))

    assert (rec.sample_rate, rec.channels) == (rate, 2)
    assert rec.samples.ndim == 1
    assert rec.duration_s == pytest.approx(5.0)
    np.testing.assert_allclose(rec.samples, 0.75 * left, atol=2e-4)
    assert any("mixed down to mono" in w for w in rec.warnings)
    assert rec.variance is None  # the loudest channel's is not the mix's


def test_truncated_wav_is_analysed_with_a_warning(wav_bytes):
    data = wav_bytes(heart_at(RATE), RATE)
    cut = data[: 44 + 2 * 12 * RATE]  # header + 12 s of the promised 20 s

    rec = utils.load_audio(cut)

    assert rec.duration_s == pytest.approx(12.0, abs=0.01)
    assert any("truncated" in w for w in rec.warnings)
    assert utils.model_input(rec).windows.shape[0] >= 5


def test_flac_cut_off_mid_stream_is_analysed_up_to_the_cut_with_a_warning():
    buf = io.BytesIO()
    sf.write(buf, heart_at(RATE, seconds=20.0), RATE, format="FLAC")
    data = buf.getvalue()

    rec = utils.load_audio(data[: len(data) * 6 // 10])  # libsndfile loses sync here

    assert 8.0 < rec.duration_s < 14.0
    assert any("truncated" in w for w in rec.warnings)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16"])
def test_8_bit_audio_is_analysed_with_a_warning_about_its_coarse_steps(subtype):
    buf = io.BytesIO()
    sf.write(buf, heart_at(RATE, seconds=5.0), RATE, format="WAV", subtype=subtype)

    rec = utils.load_audio(buf.getvalue())

    assert rec.duration_s == pytest.approx(5.0)
    assert any("8-bit" in w for w in rec.warnings) == (subtype == "PCM_U8")


# --------------------------------------------------------------------------------------
# unusable input: one clear message each, never a crash or a warning
# --------------------------------------------------------------------------------------
@degenerate
def test_empty_bytes_are_refused():
    with pytest.raises(InvalidAudioError, match=r"empty \(0 bytes\)"):
        utils.load_audio(b"")


@degenerate
def test_zero_length_wav_is_refused(wav_bytes):
    with pytest.raises(InvalidAudioError, match="no samples"):
        utils.load_audio(wav_bytes(np.zeros(0, dtype=np.float32), RATE))


@degenerate
def test_wav_truncated_to_its_header_is_refused(wav_bytes):
    header_only = wav_bytes(heart_at(RATE), RATE)[:44]
    with pytest.raises(InvalidAudioError, match="truncated: it holds a header but no audio"):
        utils.load_audio(header_only)


@degenerate
def test_flac_cut_off_before_its_first_whole_frame_is_refused():
    buf = io.BytesIO()
    sf.write(buf, heart_at(RATE, seconds=20.0), RATE, format="FLAC")
    data = buf.getvalue()
    first_frame = data.index(b"\xff\xf8", 4)  # a FLAC frame's sync code
    with pytest.raises(InvalidAudioError, match="not a readable audio recording"):
        utils.load_audio(data[: first_frame + 100])


@degenerate
@pytest.mark.parametrize(
    ("declared", "says_so"),
    [(0xFFFFFFFF, False), (0, True)],
    ids=["streamed, length unknown", "recorder stopped before writing the length"],
)
def test_wav_whose_length_was_never_written_is_read_to_its_end(wav_bytes, declared, says_so):
    """Streaming writers put 0xFFFFFFFF in the data size when they cannot seek back; a
    recorder stopped before it wrote the length leaves 0. Neither is called truncated."""
    data = bytearray(wav_bytes(heart_at(RATE, seconds=5.0), RATE))
    data[40:44] = declared.to_bytes(4, "little")

    rec = utils.load_audio(bytes(data))

    assert rec.duration_s == pytest.approx(5.0)
    assert not any("truncated" in w for w in rec.warnings)
    assert any("header says it holds no audio" in w for w in rec.warnings) == says_so


@degenerate
@pytest.mark.parametrize("seed", range(3))
def test_random_bytes_are_refused(seed):
    junk = np.random.default_rng(seed).bytes(50_000)
    with pytest.raises(InvalidAudioError, match="not a readable audio recording"):
        utils.load_audio(junk)


@degenerate
def test_text_file_is_refused(tmp_path):
    path = tmp_path / "notes.wav"  # a misleading name changes nothing
    path.write_text("Patient 12, mitral area, recorded after exercise.\n" * 100)
    with pytest.raises(InvalidAudioError, match="not a readable audio recording"):
        utils.load_audio(path)


@degenerate
def test_image_is_refused():
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buf, format="PNG")
    with pytest.raises(InvalidAudioError, match="no audio"):
        utils.load_audio(buf.getvalue())


@degenerate
def test_missing_file_and_folder_are_refused(tmp_path):
    with pytest.raises(InvalidAudioError, match="file not found"):
        utils.load_audio(tmp_path / "nothing.wav")
    with pytest.raises(InvalidAudioError, match="is a folder"):
        utils.load_audio(tmp_path)


@degenerate
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_invalid_sample_values_are_refused(bad, wav_bytes):
    x = heart_at(RATE).astype(np.float64)
    x[1234] = bad
    with pytest.raises(InvalidAudioError, match="NaN or infinity"):
        utils.load_audio(wav_bytes(x, RATE, subtype="DOUBLE"))


@degenerate
def test_float_wav_with_nan_is_refused(wav_bytes):
    x = heart_at(RATE)
    x[100] = np.nan
    with pytest.raises(InvalidAudioError, match="NaN or infinity"):
        utils.load_audio(wav_bytes(x, RATE, subtype="FLOAT"))


@degenerate
@pytest.mark.parametrize("level", [0.0, 1e-6], ids=["digital-zero", "below-noise-floor"])
def test_silent_recording_is_refused(level, wav_bytes):
    x = level * synthetic.noise(10.0, RATE, seed=0) / 0.1
    with pytest.raises(InvalidAudioError, match="silent"):
        utils.load_audio(wav_bytes(x, RATE, subtype="FLOAT"))


@degenerate
def test_constant_offset_counts_as_silent(wav_bytes):
    with pytest.raises(InvalidAudioError, match="silent"):
        utils.load_audio(wav_bytes(np.full(5 * RATE, 0.25, dtype=np.float32), RATE))


@degenerate
def test_half_second_is_too_short(wav_bytes):
    with pytest.raises(InvalidAudioError, match=r"0\.5 s long; record at least 2 s"):
        utils.load_audio(wav_bytes(heart_at(RATE, seconds=0.5), RATE))


@degenerate
def test_twenty_minutes_is_too_long(wav_bytes):
    rate = 2000  # the smallest accepted rate keeps the file small (4.8 MB)
    x = synthetic.noise(20 * 60.0, rate, seed=0)
    with pytest.raises(InvalidAudioError, match=r"20 min long.*up to 10 min"):
        utils.load_audio(wav_bytes(x, rate))


@degenerate
@pytest.mark.parametrize("rate", [1000, 192000])
def test_sample_rate_out_of_range_is_refused(rate, wav_bytes):
    x = synthetic.noise(4.0, rate, seed=0)
    with pytest.raises(InvalidAudioError, match=f"sample rate {rate} Hz is outside"):
        utils.load_audio(wav_bytes(x, rate))


@degenerate
def test_limits_come_from_the_settings(wav_bytes):
    strict = dataclasses.replace(Settings(), min_duration_s=8.0)
    data = wav_bytes(heart_at(RATE, seconds=5.0), RATE)

    assert utils.load_audio(data).duration_s == pytest.approx(5.0)
    with pytest.raises(InvalidAudioError, match="record at least 8 s"):
        utils.load_audio(data, strict)


@degenerate
def test_8_bit_and_24_bit_wav_decode_to_full_scale():
    x = heart_at(RATE, seconds=5.0)
    for width, dtype, scale, offset in [(1, np.uint8, 127, 128), (3, None, 2**23 - 1, 0)]:
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(width)
            w.setframerate(RATE)
            ints = np.round(x * scale).astype(np.int32) + offset
            if dtype is not None:
                frames = ints.astype(dtype).tobytes()
            else:
                frames = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
            w.writeframes(frames)
        rec = utils.load_audio(buf.getvalue())
        np.testing.assert_allclose(rec.samples, x, atol=1.5 / scale)


# --------------------------------------------------------------------------------------
# the demo recordings the analyzer offers
# --------------------------------------------------------------------------------------
@degenerate
def test_demo_set_is_valid_audio_and_written_once(tmp_path):
    paths = synthetic.write_demo_set(tmp_path / "demo")
    stamps = [p.stat().st_mtime_ns for p in paths]

    assert [p.name for p in paths] == list(synthetic.DEMO_RECORDINGS)
    for path in paths:
        rec = utils.load_audio(path)
        assert (rec.sample_rate, rec.channels, rec.warnings) == (8000, 1, ())
        assert rec.duration_s == pytest.approx(20.0)
    assert synthetic.write_demo_set(tmp_path / "demo") == paths
    assert [p.stat().st_mtime_ns for p in paths] == stamps  # idempotent: nothing rewritten


def test_a_damaged_demo_file_is_rewritten(tmp_path):
    (first, *_) = synthetic.write_demo_set(tmp_path)
    original = first.read_bytes()
    first.write_bytes(original[:1000])

    synthetic.write_demo_set(tmp_path)

    assert first.read_bytes() == original
    assert not list(tmp_path.glob(".*.tmp"))


def test_synthetic_sounds_are_deterministic_and_seeded():
    a = synthetic.heart_sound(5.0, RATE, murmur=True, noise_snr_db=6.0, seed=7)
    b = synthetic.heart_sound(5.0, RATE, murmur=True, noise_snr_db=6.0, seed=7)
    c = synthetic.heart_sound(5.0, RATE, murmur=True, noise_snr_db=6.0, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.abs(a).max() <= 0.99


# --------------------------------------------------------------------------------------
# bounded decoding: hostile and huge files (issue "Hardening", defect 1 and 8)
# --------------------------------------------------------------------------------------
def _bench_module():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import bench_upload_memory

    return bench_upload_memory


def test_a_file_whose_header_claims_an_hour_is_refused_before_any_decoding(monkeypatch):
    bench = _bench_module()
    flac = bytearray(bench.flac_bytes(heart_at(8000, 5.0), 8000))
    bench.claim_total_samples(flac, 3600 * 8000)

    def no_decoding(*_args):
        raise AssertionError("a block was decoded")

    monkeypatch.setattr(utils._Mixer, "add", no_decoding)
    with pytest.raises(InvalidAudioError, match="60 min long; the analyzer accepts up to 10 min"):
        utils.load_audio(bytes(flac))


def test_a_stream_that_hides_its_length_is_stopped_once_it_passes_the_limit(
    monkeypatch, phone_bytes
):
    settings = dataclasses.replace(Settings(), max_duration_s=5.0)
    monkeypatch.setattr(utils, "_declared_frames", lambda *_: None)  # the container says nothing
    added = []
    real_add = utils._Mixer.add
    monkeypatch.setattr(
        utils._Mixer, "add", lambda self, b: (added.append(len(b)), real_add(self, b))
    )
    with pytest.raises(InvalidAudioError, match="longer than that; the analyzer accepts up to 5"):
        utils.load_audio(phone_bytes(heart_at(48000, 20.0), 48000, "webm"), settings)
    # decoding stopped with the block that passed the limit, not at the end of the stream
    assert sum(added) - added[-1] <= 5.0 * 48000 < sum(added) < 20.0 * 48000


def test_samples_far_beyond_full_scale_are_refused(wav_bytes):
    x = heart_at(RATE) * np.float32(1e30)
    with pytest.raises(InvalidAudioError, match="times full scale"):
        utils.load_audio(wav_bytes(x, RATE, subtype="FLOAT"))


def test_a_length_just_over_the_limit_reads_differently_from_the_limit(wav_bytes):
    x = np.tile(heart_at(2000, 20.0), 31)[: 601 * 2000]
    with pytest.raises(
        InvalidAudioError, match="10 min 1 s long; the analyzer accepts up to 10 min"
    ):
        utils.load_audio(wav_bytes(x, 2000))


def test_long_recordings_get_the_same_log_mel_in_blocks_as_at_once():
    s = Settings()
    x = np.random.default_rng(0).standard_normal(s.sample_rate * 200).astype(np.float32)
    blocks = utils.log_mel_db(x, s)  # 10,001 frames: two blocks
    with pytest.MonkeyPatch.context() as m:
        m.setattr(utils, "_MEL_CHUNK_FRAMES", 1 << 30)
        whole = utils.log_mel_db(x, s)
    np.testing.assert_allclose(blocks, whole, atol=1e-4)


def test_multichannel_audio_is_mixed_block_by_block_like_at_once(wav_bytes):
    x = heart_at(RATE, 30.0)
    stereo = np.stack([x, 0.5 * x], axis=1)
    rec = utils.load_audio(wav_bytes(stereo, RATE, subtype="FLOAT"))
    np.testing.assert_allclose(rec.samples, stereo.mean(axis=1), atol=1e-7)
    assert rec.channels == 2


@pytest.mark.parametrize("channels", [1, 2])
def test_16_bit_audio_decodes_exactly_as_libsndfile_reads_it_with_clipping_counted(
    channels, wav_bytes
):
    """16-bit files take a faster path (no NaN or range checks a 16-bit sample cannot need);
    it must give the very samples and clip count of reading them as floats."""
    x = np.round(np.clip(3.0 * heart_at(RATE, 30.0), -1.0, 1.0) * 32767).astype(np.int16)
    x[100:200], x[300:400], x[500:600] = 32736, -32736, 32735  # 0.999 of full scale is 32736
    data = wav_bytes(np.stack([x, -x // 2], axis=1)[:, :channels], RATE)
    floats, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)

    rec = utils.load_audio(data)

    np.testing.assert_array_equal(
        rec.samples, floats.mean(axis=1, dtype=np.float64).astype(np.float32)
    )
    assert rec.clip_fraction == np.mean(np.abs(floats) >= 0.999)
    assert 0.005 < rec.clip_fraction < 0.5


@pytest.mark.parametrize(
    ("from_hz", "to_hz", "seconds"),
    [(48000, 2000, 30.0), (44100, 2000, 12.3), (16000, 8000, 40.0), (22050, 2000, 61.7)],
)
def test_a_long_recording_resampled_in_two_halves_equals_the_whole(from_hz, to_hz, seconds):
    """Halves run at once on two threads; the seam must not show (same length, same values
    to float32 rounding)."""
    import soxr

    x = np.random.default_rng(from_hz).normal(size=int(from_hz * seconds)).astype(np.float32)
    whole = soxr.resample(x, from_hz, to_hz, quality="HQ")
    halves = utils.resample(x, from_hz, to_hz)
    assert halves.shape == whole.shape
    np.testing.assert_allclose(halves, whole, atol=1e-5)
