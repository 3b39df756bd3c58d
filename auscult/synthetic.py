"""Deterministic heart-sound-like test signals at any sample rate (numpy/scipy only).

The signals are defined in continuous time and only *sampled* at the requested rate, so the
same ``seed`` gives the same waveform at 4 kHz, 8 kHz or 48 kHz (up to sampling): the beat
times, the S1/S2 tone bursts and the band-limited murmur noise do not depend on the rate.
That is what lets tests check that the front end turns one sound recorded at different rates
into the same model input.

Model of one cardiac cycle (period ``60 / bpm`` seconds, a few per cent beat-to-beat
variation):

- **S1** at the start of the cycle: two overlapping decaying tone bursts (45–65 Hz and
  80–120 Hz, the mitral and tricuspid components), about 0.1 s long.
- **S2** one systole later (0.3 s at rest, shorter at fast rates): two bursts (70–110 Hz and
  100–150 Hz, the aortic and pulmonic components), about 0.08 s long, 0.7 × the S1 level.
- optional **systolic murmur**: band-limited 100–500 Hz noise filling systole between the
  end of S1 and the start of S2.
- optional additive white **noise** at a given signal-to-noise ratio.

Examples
--------
>>> from auscult.synthetic import heart_sound
>>> x = heart_sound(10.0, 8000, bpm=72, seed=1)
>>> x.shape, x.dtype
((80000,), dtype('float32'))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = [
    "DEMO_RATE",
    "DEMO_DURATION_S",
    "DEMO_RECORDINGS",
    "beat_times",
    "heart_sound",
    "noise",
    "systole_s",
    "write_demo_set",
]

#: Sample rate (Hz) and length (s) of the demo recordings.
DEMO_RATE = 8000
DEMO_DURATION_S = 20.0
#: Demo file name → keyword arguments of :func:`heart_sound`.
DEMO_RECORDINGS: dict[str, dict[str, object]] = {
    "synthetic_normal_72bpm.wav": {"bpm": 72.0, "seed": 1},
    "synthetic_murmur_88bpm.wav": {"bpm": 88.0, "murmur": True, "seed": 2},
    "synthetic_noisy_normal.wav": {"bpm": 66.0, "noise_snr_db": 0.0, "seed": 3},
}

_S1_LENGTH_S = 0.10  # time from S1 onset until the burst has died away
_S2_LENGTH_S = 0.08
_S2_LEVEL = 0.7  # S2 peak relative to S1
_MURMUR_BAND_HZ = (100.0, 500.0)
_MURMUR_LEVEL = 0.3  # murmur peak envelope relative to the S1 peak
_JITTER = 0.02  # standard deviation of the beat-to-beat period, as a fraction of it


def _n_samples(duration_s: float, rate: int) -> int:
    if duration_s < 0:
        raise ValueError(f"duration_s={duration_s} is negative; pass a length in seconds")
    if rate <= 0:
        raise ValueError(f"rate={rate} Hz must be positive")
    return round(duration_s * rate)


def systole_s(bpm: float) -> float:
    """Systole length in seconds: 0.3 s at rest, never more than 45 % of the cycle."""
    return min(0.3, 0.45 * 60.0 / bpm)


def beat_times(duration_s: float, bpm: float = 72.0, seed: int = 0) -> np.ndarray:
    """S1 onset times in seconds, shape ``(n_beats,)``; independent of any sample rate.

    The first beat falls at a random point of the first cycle; periods vary by about 2 %
    (seeded), their mean is ``60 / bpm``.
    """
    if not 20.0 <= bpm <= 250.0:
        raise ValueError(f"bpm={bpm} is not a heart rate; use 20–250")
    rng = np.random.default_rng([seed, 1])
    period = 60.0 / bpm
    n = int(duration_s / period) + 2
    periods = period * (1.0 + _JITTER * rng.standard_normal(n))
    start = rng.uniform(0.0, period)
    times = start + np.concatenate([[0.0], np.cumsum(periods[:-1])])
    return times[times < duration_s]


def _burst(t: np.ndarray, onset: float, freq_hz: float, tau_s: float, phase: float) -> np.ndarray:
    """A decaying tone burst with a smooth (gamma-shaped) onset and a peak envelope of 1.

    ``t`` (s) is the time axis, shape ``(n,)``; samples before ``onset`` are 0. The envelope
    ``(u / 2τ)² · e^(2 - u/τ)`` peaks at ``u = 2τ`` with value 1 and has no click at onset.
    """
    u = t - onset
    out = np.zeros_like(t)
    live = (u >= 0) & (u < 12 * tau_s)
    ul = u[live]
    envelope = (ul / (2 * tau_s)) ** 2 * np.exp(2.0 - ul / tau_s)
    out[live] = envelope * np.sin(2 * np.pi * freq_hz * ul + phase)
    return out


def _band_noise(n: int, rate: int, band_hz: tuple[float, float], seed: int) -> np.ndarray:
    """Gaussian noise with a flat spectrum in ``band_hz``, unit RMS, shape ``(n,)``.

    Built in the frequency domain on a grid of ``1 / duration`` Hz, so the same seed gives
    the same continuous-time waveform at every sample rate whose Nyquist frequency lies
    above the band.
    """
    if n == 0:
        return np.zeros(0)
    duration = n / rate
    lo = max(1, int(np.ceil(band_hz[0] * duration)))
    hi = min(n // 2, int(np.floor(band_hz[1] * duration)))
    rng = np.random.default_rng([seed, 2])
    # Draw coefficients for the whole band whatever the rate, then keep those that fit.
    k_max = int(np.floor(band_hz[1] * duration))
    coefficients = rng.standard_normal(k_max + 1) + 1j * rng.standard_normal(k_max + 1)
    spectrum = np.zeros(n // 2 + 1, dtype=complex)
    if hi >= lo:
        spectrum[lo : hi + 1] = coefficients[lo : hi + 1]
    x = np.fft.irfft(spectrum, n)
    rms = np.sqrt(np.mean(x**2))
    return x / rms if rms > 0 else x


def heart_sound(
    duration_s: float,
    rate: int,
    bpm: float = 72.0,
    murmur: bool = False,
    noise_snr_db: float | None = None,
    seed: int = 0,
    *,
    amplitude: float = 0.5,
) -> np.ndarray:
    """A heart-sound-like recording: S1/S2 tone bursts, optional murmur and noise.

    Parameters
    ----------
    duration_s : float
        Length in seconds.
    rate : int
        Sample rate in Hz. At least about 1.1 kHz for a murmur (its band reaches 500 Hz).
    bpm : float
        Mean heart rate in beats per minute (20–250).
    murmur : bool
        Add a systolic murmur: 100–500 Hz noise filling systole.
    noise_snr_db : float or None
        Add white Gaussian noise (flat up to the Nyquist frequency) at this signal-to-noise
        ratio in dB, measured over the whole recording and the whole band. None: no noise.
    seed : int
        Seeds everything random (beat times, burst pitches, murmur and noise).
    amplitude : float
        Peak of S1's main (mitral) burst, full scale = 1; with its second burst S1 peaks
        near ``1.5 * amplitude``.

    Returns
    -------
    numpy.ndarray
        ``(round(duration_s * rate),)`` float32 samples. The whole signal is scaled down
        only if noise would push it beyond ±0.99, so it never clips.
    """
    n = _n_samples(duration_s, rate)
    t = np.arange(n) / rate
    rng = np.random.default_rng([seed, 0])
    x = np.zeros(n)
    systole = systole_s(bpm)
    onsets = beat_times(duration_s, bpm, seed)
    gate = np.zeros(n)
    for onset in onsets:
        level = 1.0 + 0.08 * rng.standard_normal()
        f = rng.uniform([45.0, 80.0, 70.0, 100.0], [65.0, 120.0, 110.0, 150.0])
        phases = rng.uniform(0.0, 2 * np.pi, 4)
        split = rng.uniform(0.015, 0.035)  # A2–P2 split, s
        s2 = onset + systole
        x += level * _burst(t, onset, f[0], 0.012, phases[0])
        x += 0.6 * level * _burst(t, onset + 0.02, f[1], 0.010, phases[1])
        x += _S2_LEVEL * level * _burst(t, s2, f[2], 0.010, phases[2])
        x += 0.5 * _S2_LEVEL * level * _burst(t, s2 + split, f[3], 0.008, phases[3])
        if murmur:
            start, stop = onset + _S1_LENGTH_S * 0.6, s2 + 0.01
            inside = (t >= start) & (t < stop)
            # Holosystolic plateau with raised-cosine edges of 20 ms (no clicks).
            u = t[inside] - start
            edge = 0.02
            ramp = np.minimum(1.0, np.minimum(u, stop - start - u) / edge)
            gate[inside] = 0.5 - 0.5 * np.cos(np.pi * np.clip(ramp, 0.0, 1.0))
    if murmur:
        band = (_MURMUR_BAND_HZ[0], min(_MURMUR_BAND_HZ[1], 0.45 * rate))
        # Band noise has unit RMS; its peaks sit near 3 × RMS, so /3 makes the level a peak.
        x += _MURMUR_LEVEL / 3.0 * gate * _band_noise(n, rate, band, seed)
    x *= amplitude
    if noise_snr_db is not None and n:
        signal_power = float(np.mean(x**2))
        noise_rng = np.random.default_rng([seed, 3])
        noise_power = signal_power / 10.0 ** (noise_snr_db / 10.0)
        x += np.sqrt(noise_power) * noise_rng.standard_normal(n)
    peak = float(np.max(np.abs(x))) if n else 0.0
    if peak > 0.99:
        x *= 0.99 / peak
    return x.astype(np.float32)


def noise(
    duration_s: float,
    rate: int,
    seed: int = 0,
    *,
    rms: float = 0.1,
    band_hz: tuple[float, float] | None = None,
) -> np.ndarray:
    """A noise-only recording (no heartbeat): what a misplaced microphone picks up.

    Parameters
    ----------
    duration_s : float
        Length in seconds.
    rate : int
        Sample rate in Hz.
    seed : int
        Seed of the noise.
    rms : float
        Root-mean-square level, full scale = 1.
    band_hz : (float, float) or None
        None: white Gaussian noise up to the Nyquist frequency. A ``(low, high)`` pair in Hz:
        noise with a flat spectrum in that band only, the same waveform at every rate.

    Returns
    -------
    numpy.ndarray
        ``(round(duration_s * rate),)`` float32 samples.
    """
    n = _n_samples(duration_s, rate)
    if band_hz is None:
        x = np.random.default_rng([seed, 4]).standard_normal(n)
    else:
        x = _band_noise(n, rate, band_hz, seed)
    return np.clip(rms * x, -0.99, 0.99).astype(np.float32)


def heart_sound_wav(seconds: float = 10.0, rate: int = 8000, seed: int = 3) -> bytes:
    """A normal 72 bpm heart sound as 16-bit WAV bytes (load tests, benchmarks)."""
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, heart_sound(seconds, rate, bpm=72, seed=seed), rate, format="WAV")
    return buf.getvalue()


def write_demo_set(folder: Path | str) -> list[Path]:
    """Write the synthetic demo recordings as 16-bit WAV files; return their paths.

    Idempotent: a file that already holds exactly the expected audio is left untouched
    (its modification time does not change); a missing or different file is (re)written
    atomically, so a reader never sees half a file.
    """
    import soundfile as sf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name, kwargs in DEMO_RECORDINGS.items():
        path = folder / name
        x = heart_sound(DEMO_DURATION_S, DEMO_RATE, **kwargs)  # type: ignore[arg-type]
        pcm = np.round(x * 32767.0).astype(np.int16)
        if not _holds(path, pcm, DEMO_RATE):
            tmp = path.with_name(f".{name}.tmp")
            sf.write(tmp, pcm, DEMO_RATE, subtype="PCM_16", format="WAV")
            tmp.replace(path)
        paths.append(path)
    return paths


def _holds(path: Path, pcm: np.ndarray, rate: int) -> bool:
    """Whether ``path`` is a WAV file with exactly these 16-bit samples at this rate."""
    import soundfile as sf

    if not path.is_file():
        return False
    try:
        existing, existing_rate = sf.read(path, dtype="int16")
    except Exception:  # unreadable: rewrite it
        return False
    return existing_rate == rate and existing.shape == pcm.shape and np.array_equal(existing, pcm)
