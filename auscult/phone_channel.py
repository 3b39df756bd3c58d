"""A simulated phone channel: what a phone pressed to the chest does to a heart sound.

Used to build a phone-simulation test set from labelled stethoscope recordings (and noise-
only recordings for the quality gate), so the model and the quality gate can be judged on
phone-like input without labelled phone recordings. Every step is seeded.

The channel, in order (each step is what a phone's audio path does, not a guess at a model):

1. the recording at 48 kHz (a phone's capture rate);
2. the microphone's low cut: a 3rd-order high-pass at 100–200 Hz (phone microphones roll off
   below ~100–200 Hz, where S1 and S2 hold much of their energy). Fitted to 50 real phone
   recordings pressed to the chest (phone_unlabelled; their spectrum only, no labels): their
   25–80 Hz level relative to 80–160 Hz has quartiles −10.2 / −5.3 / +10.8 dB (PhysioNet
   2016: 5.4 / 9.1 / 12.4); this cut gives 80 PhysioNet recordings −9.1 / −6.0 / −4.3 (the
   earlier 2nd-order cut at 80–200 Hz: −4.3 / −1.4 / +1.0). Phones whose noise is mostly
   low rumble make the real upper quartile;
3. noise at a chosen SNR (measured in the 25–950 Hz band the model sees): real phone noise
   cut from the quiet stretches of unlabelled phone recordings, or synthetic handling and
   room noise when no phone recordings are at hand;
4. automatic gain control: a slow (~1 s) gain that rides the level towards a target;
5. a limiter: loud peaks squashed by a soft clip;
6. a codec round trip: WebM/Opus (Android Chrome) or MP4/AAC (iOS Safari) at 48 kHz.

The result is the encoded file's bytes, exactly what a phone page would upload.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal as sps

from utils import resample

__all__ = [
    "ENCODINGS",
    "PHONE_FORMATS",
    "PHONE_RATE",
    "PhoneChannel",
    "apply_channel",
    "band_power",
    "encode_phone",
    "noise_only",
    "phone_noise_bank",
    "random_channel",
]

PHONE_RATE = 48000
#: PyAV container format → (audio codec, encoder sample rate in Hz).
PHONE_FORMATS = {
    "webm": ("libopus", 48000),  # Android Chrome's MediaRecorder
    "mp4": ("aac", 48000),  # iOS Safari's MediaRecorder (.m4a/.mp4)
}
#: What :func:`encode_phone` writes: the browsers' formats, and the raw AAC stream (ADTS,
#: ``.aac``) some recorder apps save; the simulated channel draws from the browsers' only.
ENCODINGS = {**PHONE_FORMATS, "adts": ("aac", 48000)}
MIC_ORDER = 3  # the microphone low cut's Butterworth order
#: Noise-only recordings the quality gate must refuse: what a phone picks up when it is not on
#: a chest. Music and feedback whistles are in the artifact class of the PASCAL 2011 phone
#: recordings ("feedback squeals and echoes, speech, music and noise").
NOISE_KINDS = ("phone", "room", "handling", "rubbing", "speech", "music", "feedback")


@dataclass(frozen=True)
class PhoneChannel:
    """One draw of the phone channel's settings."""

    snr_db: float | None  # None: no added noise
    noise: str  # one of NOISE_KINDS
    low_cut_hz: float
    agc: bool
    limiter: bool
    container: str  # "webm" or "mp4"


def random_channel(rng: np.random.Generator, snr_db: float | None) -> PhoneChannel:
    """A random phone: microphone corner, AGC and limiter on or off, Opus or AAC."""
    return PhoneChannel(
        snr_db=snr_db,
        noise="phone",
        low_cut_hz=float(rng.uniform(100.0, 200.0)),
        agc=bool(rng.random() < 0.7),
        limiter=bool(rng.random() < 0.5),
        container=str(rng.choice(list(PHONE_FORMATS))),
    )


def band_power(x: np.ndarray, rate: int, band_hz: tuple[float, float] = (25.0, 950.0)) -> float:
    """Mean power of ``x`` in ``band_hz`` (4th-order Butterworth band-pass)."""
    sos = sps.butter(4, band_hz, btype="bandpass", fs=rate, output="sos")
    y = sps.sosfilt(sos, np.asarray(x, dtype=np.float64))
    return float(np.mean(y * y))


def phone_noise_bank(folder: Path | str, seconds_per_file: float = 4.0) -> np.ndarray:
    """Real phone noise at 48 kHz: the quiet stretches of unlabelled phone recordings.

    From each recording, the 50 ms frames quieter than its 30th percentile of heart-band
    level (between the heart sounds) are kept, up to ``seconds_per_file``, and joined with
    5 ms cross-fades; joining frames of different moments breaks any rhythm left in them.
    Returns an empty array when the folder holds no readable audio.
    """
    import soundfile as sf

    pieces: list[np.ndarray] = []
    for path in sorted(Path(folder).glob("*.flac")) + sorted(Path(folder).glob("*.wav")):
        x, rate = sf.read(path, dtype="float32", always_2d=True)
        x = resample(x.mean(axis=1), rate, PHONE_RATE)
        frame = PHONE_RATE // 20
        n = len(x) // frame
        if n < 10:
            continue
        frames = x[: n * frame].reshape(n, frame)
        sos = sps.butter(4, (25.0, 950.0), btype="bandpass", fs=PHONE_RATE, output="sos")
        level = np.sqrt(np.mean(sps.sosfilt(sos, frames, axis=1) ** 2, axis=1))
        quiet = frames[level <= np.percentile(level, 30)]
        quiet = quiet[: int(seconds_per_file * 20)]
        fade = np.linspace(0.0, 1.0, PHONE_RATE // 200, dtype=np.float32)
        quiet = quiet.copy()
        quiet[:, : len(fade)] *= fade
        quiet[:, -len(fade) :] *= fade[::-1]
        pieces.append(quiet.ravel() / max(float(np.sqrt(np.mean(quiet**2))), 1e-9))
    return np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)


def _synthetic_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise at 48 kHz of one kind: room, handling, rubbing, speech-like, music or a
    feedback whistle."""
    t = np.arange(n) / PHONE_RATE
    if kind == "room":  # pink-ish room noise with mains hum
        white = rng.standard_normal(n)
        spectrum = np.fft.rfft(white)
        spectrum /= np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / PHONE_RATE), 20.0))
        x = np.fft.irfft(spectrum, n) + 0.3 * np.sin(2 * np.pi * rng.choice([50, 60]) * t)
    elif kind == "handling":  # irregular low thumps of fingers shifting on the phone
        x = 0.05 * rng.standard_normal(n)
        for onset in np.cumsum(rng.exponential(0.6, size=int(n / PHONE_RATE / 0.3) + 1)):
            i = int(onset * PHONE_RATE)
            if i >= n:
                break
            length = min(n - i, int(rng.uniform(0.03, 0.25) * PHONE_RATE))
            decay = np.exp(-np.arange(length) / (0.3 * length))
            x[i : i + length] += rng.uniform(0.5, 3.0) * decay * rng.standard_normal(length)
        x = sps.sosfilt(sps.butter(2, 400.0, fs=PHONE_RATE, output="sos"), x)
    elif kind == "rubbing":  # cloth or skin friction: broadband, slowly swelling strokes
        rate_hz = rng.uniform(0.5, 3.0)
        stroke = np.abs(np.sin(np.pi * rate_hz * t + rng.uniform(0, np.pi))) ** 2
        jitter = np.interp(t, np.linspace(0, t[-1], 50), rng.uniform(0.3, 1.0, 50))
        x = rng.standard_normal(n) * stroke * jitter
        x = sps.sosfilt(sps.butter(2, (100.0, 3000.0), "bandpass", fs=PHONE_RATE, output="sos"), x)
    elif kind == "speech":  # babble: voiced pulses through formants, syllable rhythm ~4 Hz
        f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * 0.3 * t))
        pulses = (np.diff(np.floor(np.cumsum(f0) / PHONE_RATE), prepend=0) > 0).astype(float)
        x = np.zeros(n)
        for formant in (rng.uniform(300, 800), rng.uniform(900, 2200), rng.uniform(2400, 3200)):
            sos = sps.butter(2, (formant * 0.85, formant * 1.15), "bandpass", fs=PHONE_RATE,
                             output="sos")  # fmt: skip
            x += sps.sosfilt(sos, pulses)
        syllables = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, 6)), 0, 1)
        words = np.interp(t, np.linspace(0, t[-1], 30), (rng.random(30) < 0.7).astype(float))
        x *= syllables * words
    elif kind == "music":
        x = _music(t, rng)
    elif kind == "feedback":
        x = _feedback(t, rng)
    else:
        raise ValueError(f"unknown noise kind {kind!r}; choose one of {NOISE_KINDS}")
    x = np.asarray(x, dtype=np.float64)
    return (x / max(float(np.sqrt(np.mean(x * x))), 1e-12)).astype(np.float32)


def _music(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Music with a beat at 60–140 bpm: kick and snare, bass and chords, a sung line.

    The hard case for a rhythm-based gate: the drums repeat like S1 and S2, and most of the
    power stays below 1 kHz, where the high-band rule cannot see it.
    """
    n = len(t)
    beat = 60.0 / rng.uniform(60.0, 140.0)
    x = np.zeros(n)
    for k, onset in enumerate(np.arange(rng.uniform(0, beat), t[-1], beat / 2)):
        i = int(onset * PHONE_RATE)
        tt = np.arange(min(n - i, int(0.25 * PHONE_RATE))) / PHONE_RATE
        if k % 2 == 0:  # kick: a thump falling from 120 to 50 Hz
            sweep = 50.0 + 70.0 * np.exp(-tt / 0.03)
            x[i : i + len(tt)] += (
                2.0 * np.sin(2 * np.pi * np.cumsum(sweep) / PHONE_RATE) * np.exp(-tt / 0.08)
            )
        else:  # snare: a noise burst
            x[i : i + len(tt)] += 0.6 * rng.standard_normal(len(tt)) * np.exp(-tt / 0.04)
    for bar in np.arange(0.0, t[-1], 4 * beat):  # a new chord every bar
        i, j = int(bar * PHONE_RATE), min(n, int((bar + 4 * beat) * PHONE_RATE))
        root, tt = 55.0 * 2 ** (rng.integers(0, 12) / 12), t[i:j]
        for harmonic, level in ((1, 0.8), (2, 0.4), (3, 0.2)):
            x[i:j] += level * np.sin(2 * np.pi * root * harmonic * tt)
        for semitones in (24, 28, 31):
            tremolo = 1 + 0.5 * np.sin(2 * np.pi * 5 * tt)
            x[i:j] += 0.25 * np.sin(2 * np.pi * root * 2 ** (semitones / 12) * tt) * tremolo
    f0 = rng.uniform(180.0, 400.0) * (1 + 0.05 * np.sin(2 * np.pi * 0.5 * t))
    voice = sum(np.sin(2 * np.pi * np.cumsum(f0 * h) / PHONE_RATE) / h for h in range(1, 12))
    voice = voice * np.clip(np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t), 0, 1)
    return x / np.std(x) + 0.5 * voice / max(float(np.std(voice)), 1e-9)


def _feedback(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A feedback whistle at 250–2500 Hz that swells and fades, drifting slightly in pitch."""
    pitch = rng.uniform(250.0, 2500.0) * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t))
    swell = np.clip(np.interp(t, np.linspace(0, t[-1], 20), rng.uniform(0, 1.5, 20)), 0, 1)
    whistle = swell * np.sin(2 * np.pi * np.cumsum(pitch) / PHONE_RATE)
    return whistle + 0.05 * rng.standard_normal(len(t))


def _noise(kind: str, n: int, bank: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of unit-RMS noise; real phone noise from ``bank`` when asked and present."""
    if kind != "phone" or len(bank) == 0:
        return _synthetic_noise("room" if kind == "phone" else kind, n, rng)
    start = int(rng.integers(0, len(bank)))
    reps = int(np.ceil((start + n) / len(bank)))
    return np.tile(bank, reps)[start : start + n]


def _agc(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ride the level toward a target with a ~1 s time constant, within ±12 dB."""
    frame = PHONE_RATE // 50
    n = len(x) // frame
    if n < 2:
        return x
    level = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    tau = rng.uniform(0.5, 2.0) * 50  # frames
    smooth = sps.lfilter([1 / tau], [1, -(1 - 1 / tau)], level, zi=[level[0] * (1 - 1 / tau)])[0]
    gain = np.clip(np.median(level) / smooth, 10 ** (-12 / 20), 10 ** (12 / 20))
    per_sample = np.interp(np.arange(len(x)), (np.arange(n) + 0.5) * frame, gain)
    return (x * per_sample).astype(np.float32)


def _limiter(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Soft-clip peaks above the 95th–99.5th percentile of |x|."""
    knee = float(np.percentile(np.abs(x), rng.uniform(95.0, 99.5))) or 1.0
    return (knee * np.tanh(x / knee)).astype(np.float32)


def encode_phone(samples: np.ndarray, rate: int, container: str, bit_rate: int = 64000) -> bytes:
    """Encode mono float samples as a phone would: WebM/Opus, MP4/AAC or raw AAC (PyAV)."""
    import av

    codec, codec_rate = ENCODINGS[container]
    x = np.asarray(samples, dtype=np.float32)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=codec_rate, layout="mono")
        stream.bit_rate = bit_rate
        step = 1024
        for start in range(0, len(x), step):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(x[None, start : start + step]), format="flt", layout="mono"
            )
            frame.sample_rate = rate
            frame.pts = start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def apply_channel(
    samples: np.ndarray,
    rate: int,
    channel: PhoneChannel,
    rng: np.random.Generator,
    bank: np.ndarray | None = None,
) -> bytes:
    """Pass a recording through ``channel``; return the encoded phone file."""
    x = resample(samples, rate, PHONE_RATE).astype(np.float64)
    low_cut = sps.butter(MIC_ORDER, channel.low_cut_hz, "highpass", fs=PHONE_RATE, output="sos")
    x = sps.sosfilt(low_cut, x)
    if channel.snr_db is not None:
        noise = _noise(channel.noise, len(x), np.zeros(0) if bank is None else bank, rng)
        scale = np.sqrt(band_power(x, PHONE_RATE) / max(band_power(noise, PHONE_RATE), 1e-20))
        x = x + noise * scale * 10 ** (-channel.snr_db / 20)
    x = x.astype(np.float32)
    if channel.agc:
        x = _agc(x, rng)
    if channel.limiter:
        x = _limiter(x, rng)
    x *= 0.5 / max(float(np.max(np.abs(x))), 1e-9)  # the phone's level: well below clipping
    return encode_phone(x, PHONE_RATE, channel.container)


def noise_only(
    kind: str, seconds: float, rng: np.random.Generator, bank: np.ndarray | None = None
) -> bytes:
    """A phone recording with no heart in it: noise of ``kind`` through a random channel."""
    n = int(seconds * PHONE_RATE)
    x = _noise(kind, n, np.zeros(0) if bank is None else bank, rng)
    channel = random_channel(rng, None)
    return apply_channel(x, PHONE_RATE, channel, rng)
