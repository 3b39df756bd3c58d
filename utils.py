"""The audio front end: the one path from any recording to model input.

decode → validate → mono → resample to 2 kHz (the training data's rate) → band-limit →
robust normalise → the 8 kHz log-mel of the whole recording (taken from those 2 kHz samples,
see ``log_mel_db``) → per-band mean removal → sliding windows.

Training, evaluation, both apps, the API and the scripts all call these functions; nothing else
builds model input. Heavy decoders (PyAV) are imported only when soundfile cannot read a file.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import scipy.fft
from scipy import signal as sps

from auscult.background import Background
from auscult.errors import AuscultError, InvalidAudioError, NotAudioError
from auscult.filters import zero_phase
from config import Settings, get_settings

__all__ = [
    "AudioSource",
    "Recording",
    "ModelInput",
    "load_audio",
    "resample",
    "band_signal",
    "robust_scale",
    "high_band_share",
    "prepare_signal",
    "log_mel_db",
    "normalise_bands",
    "coarse_bands",
    "cnn_windows",
    "frame_windows",
    "model_input",
    "mel_band_edges",
    "mel_filterbank",
    "SUPPORTED_EXTENSIONS",
]

log = logging.getLogger(__name__)

AudioSource = bytes | bytearray | str | Path

#: File endings the analyzer offers in upload dialogs and batch folder scans.
SUPPORTED_EXTENSIONS = (
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".mp4", ".aac", ".webm", ".caf",
    ".aif", ".aiff",
)  # fmt: skip


@dataclass(frozen=True)
class Recording:
    """A decoded, validated recording, mixed to mono at its native rate."""

    samples: np.ndarray  # (n_samples,) float32, full scale = 1
    sample_rate: int  # Hz, as decoded
    channels: int  # channels in the file before the mono mix
    warnings: tuple[str, ...] = ()
    clip_fraction: float = 0.0  # share of samples at full scale, measured before resampling
    #: Variance of ``samples``, when the decoder measured it on the way (mono files); saves
    #: the front end a pass over a long 48 kHz recording. None: not known.
    variance: float | None = None

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class ModelInput:
    """What the model sees for one recording, plus what the UI needs to draw it."""

    windows: np.ndarray  # (n_windows, n_mels, window_frames) float32
    window_starts_s: np.ndarray  # (n_windows,) seconds from the start of the recording
    features: np.ndarray  # (n_mels, n_frames) normalised log-mel of the whole recording
    band: np.ndarray  # (n_samples,) band-limited, normalised, at settings.band_rate (2 kHz)
    high_band_share: float  # power above ~1 kHz in the recording as decoded (see high_band_share)
    padded: bool  # the recording was shorter than one window and was repeated to fill it


# --------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Source:
    """Where encoded audio comes from: opened as a stream, never read whole from disk."""

    name: str  # for messages
    size: int  # bytes
    head: bytes  # the first bytes (container headers)
    data: bytes | None = None  # in memory already (uploads)
    path: Path | None = None

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data) if self.data is not None else open(self.path, "rb")  # type: ignore[arg-type]


_HEAD_BYTES = 1 << 16


def _source(source: AudioSource) -> _Source:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        return _Source("the upload", len(data), data[:_HEAD_BYTES], data=data)
    path = Path(source)
    if not path.exists():
        raise InvalidAudioError(f"file not found: {path}; check the path and try again")
    if path.is_dir():
        raise InvalidAudioError(f"{path} is a folder, not an audio file")
    with open(path, "rb") as f:
        head = f.read(_HEAD_BYTES)
    return _Source(path.name, path.stat().st_size, head, path=path)


def _riff_data_missing(head: bytes, size: int) -> bool:
    """Whether a RIFF/WAVE file's ``data`` chunk declares more bytes than the file holds.

    libsndfile quietly shrinks the frame count of such a file to what is present, so a
    truncated WAV cannot be told from a short one by ``frames``. Streaming writers that do
    not know the length (size 0 or 0xFFFFFFFF) are not called truncated. ``head`` is the
    start of the file, ``size`` its length in bytes.
    """
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
        return False
    order = "little" if head[:4] == b"RIFF" else "big"
    offset = 12
    while offset + 8 <= len(head):
        chunk = int.from_bytes(head[offset + 4 : offset + 8], order)
        if head[offset : offset + 4] == b"data":
            return chunk not in (0, 0xFFFFFFFF) and chunk > size - (offset + 8)
        offset += 8 + chunk + (chunk & 1)
    return False


#: libsndfile subtypes read as int16 and scaled here: its own float conversion is ~15×
#: slower than NumPy's, and a 30 s 48 kHz phone WAV is 1.4 M samples.
_INT16_SUBTYPES = frozenset({"PCM_16", "PCM_S8", "PCM_U8"})
#: Linear 8-bit audio has 256 levels: a heart recording at a typical level (RMS ~2 % of full
#: scale) spans only a few steps (the first 8 s of a PhysioNet record, exported so, moved
#: from 0.23 to 0.06).
_8_BIT_SUBTYPES = frozenset({"PCM_S8", "PCM_U8"})
#: Frames decoded at a time. Checks and the mono mix run block by block, so a file never
#: exists in memory as a whole multi-channel float array, and decoding stops as soon as a
#: recording proves too long (a small file can decode to hours: a decompression bomb).
#: 256 k frames (5.5 s at 48 kHz, 1 MB per channel): a 30 s phone WAV decoded ~0.6 ms
#: faster than in 64 k blocks.
BLOCK_FRAMES = 1 << 18
#: The warning for a file that stops before its declared end.
_TRUNCATED = "the file ends early (truncated); only the readable part was used"
#: Sample values beyond this many times full scale mean a corrupt or unscaled float file.
_MAX_MAGNITUDE = 1000.0
_PCM16_SCALE = np.float32(1.0 / 32768.0)  # libsndfile's own int16 → float scale
_PCM16_CLIP = 32736  # the first 16-bit value at or above 0.999 of full scale
_NOT_READABLE = (
    "this file is not a readable audio recording (it may be corrupt, truncated or not audio "
    "at all); export it again as WAV, FLAC, MP3, M4A or WebM"
)


def _fmt_duration(seconds: float) -> str:
    """``12.5 s``, ``10 min 1 s``: precise enough that two different lengths never read alike."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min" + (f" {rest} s" if rest else "")


class _Mixer:
    """Collects decoded blocks ``(n, channels)`` as mono float32, checking as it goes.

    Refuses at once an unsupported rate, a recording longer than ``max_duration_s`` (from the
    header when it says, else as soon as the decoded length passes it), and NaN, infinite or
    absurdly large values; keeps per-channel sums for the silence check and counts clipped
    samples before the mix.
    """

    def __init__(self, rate: int, channels: int, s: Settings, frames_hint: int | None) -> None:
        if not s.min_rate_hz <= rate <= s.max_rate_hz:
            raise InvalidAudioError(
                f"sample rate {rate} Hz is outside the supported "
                f"{s.min_rate_hz}–{s.max_rate_hz} Hz; record at 4–48 kHz"
            )
        self.rate, self.channels, self.s = rate, max(int(channels), 1), s
        self.limit = int(s.max_duration_s * rate)
        if frames_hint is not None and frames_hint > self.limit:
            self._too_long(frames_hint / rate)
        # The length is known from the header: fill one array instead of joining pieces.
        self._buffer = np.empty(frames_hint, np.float32) if frames_hint else None
        self._parts: list[np.ndarray] = []
        self.frames = 0
        self.clipped = 0
        self._sum = np.zeros(self.channels)
        self._sumsq = np.zeros(self.channels)

    def _too_long(self, seconds: float | None) -> None:
        length = f"{_fmt_duration(seconds)} long" if seconds else "longer than that"
        raise InvalidAudioError(
            f"recording is {length}; the analyzer accepts up to "
            f"{_fmt_duration(self.s.max_duration_s)} — trim it to the part you want judged"
        )

    def _take(self, n: int) -> bool:
        """Account for n more frames (refusing a recording grown too long); False for none."""
        if n == 0:
            return False
        if self.frames + n > self.limit:
            self._too_long(None)
        return True

    def add(self, block: np.ndarray) -> None:
        """Add float samples ``(n, channels)``, refusing invalid values."""
        if not self._take(block.shape[0]):
            return
        if not np.isfinite(block).all():
            raise InvalidAudioError(
                "the recording contains invalid values (NaN or infinity); export it again"
            )
        peak = max(float(block.max()), -float(block.min()))
        if peak > _MAX_MAGNITUDE:
            raise InvalidAudioError(
                f"the samples reach {peak:.3g} times full scale: the file is corrupt or its "
                "levels were never scaled; export it again"
            )
        if peak >= 0.999:
            self.clipped += int(np.count_nonzero(np.abs(block) >= 0.999))
        self._keep(block)

    def add_pcm16(self, raw: np.ndarray) -> None:
        """Add 16-bit samples ``(n, channels)``: finite and within full scale by nature, so
        only clipping is counted (from 32736, the float path's 0.999 of full scale), and a
        mono block is scaled straight into the buffer."""
        n = raw.shape[0]
        if not self._take(n):
            return
        if max(int(raw.max()), -int(raw.min())) >= _PCM16_CLIP:
            self.clipped += int(np.count_nonzero(raw >= _PCM16_CLIP))
            self.clipped += int(np.count_nonzero(raw <= -_PCM16_CLIP))
        direct = self.channels == 1 and self._fits(n)
        if direct:
            block = self._buffer[self.frames : self.frames + n, None]
            np.multiply(raw, _PCM16_SCALE, out=block)
        else:
            block = np.multiply(raw, _PCM16_SCALE)
        self._keep(block, in_buffer=direct)

    def _fits(self, n: int) -> bool:
        return self._buffer is not None and self.frames + n <= len(self._buffer)

    def _keep(self, block: np.ndarray, in_buffer: bool = False) -> None:
        """Sum a checked block for the silence check and keep its mono mix (``in_buffer``:
        the block is already the buffer's next rows)."""
        n = block.shape[0]
        # Sums for the silence check: float64 totals of float32 block sums (pairwise, and
        # BLAS for the squares of a single channel).
        if self.channels == 1:
            mono = block[:, 0]
            self._sum += np.sum(mono, dtype=np.float32)
            self._sumsq += np.dot(mono, mono)
        else:
            self._sum += block.sum(axis=0, dtype=np.float64)
            self._sumsq += np.einsum("ij,ij->j", block, block, dtype=np.float32)
            mono = block.mean(axis=1, dtype=np.float64)
        if self._fits(n):
            if not in_buffer:
                self._buffer[self.frames : self.frames + n] = mono
        else:
            if self._buffer is not None:  # the header under-stated the length
                self._parts.append(self._buffer[: self.frames].copy())
                self._buffer = None
            self._parts.append(np.asarray(mono, np.float32))
        self.frames += n

    def samples(self) -> np.ndarray:
        if self._buffer is not None:
            return self._buffer[: self.frames]
        return np.concatenate(self._parts) if self._parts else np.zeros(0, np.float32)

    def variance(self) -> float:
        """Variance of the loudest channel."""
        n = max(self.frames, 1)
        variance = self._sumsq / n - (self._sum / n) ** 2
        return max(float(variance.max()), 0.0)


def _decode_soundfile(src: _Source, s: Settings, warnings: list[str]) -> _Mixer | None:
    """Decode with libsndfile block by block, or None when it cannot read the format at all.
    What the file itself costs (truncation, 8-bit steps) is added to ``warnings``."""
    import soundfile as sf

    stream = src.open()
    try:
        f = sf.SoundFile(stream)
    except Exception:  # not a format libsndfile knows: try FFmpeg
        stream.close()
        return None
    with stream, f:
        mixer = _Mixer(f.samplerate, f.channels, s, f.frames if f.frames > 0 else None)
        as_int16 = f.subtype in _INT16_SUBTYPES
        if f.subtype in _8_BIT_SUBTYPES:
            warnings.append(
                "the file is 8-bit audio: quiet heart sounds and murmurs lose detail in its "
                "coarse steps and the answer can change; record or export at 16 bit"
            )
        try:
            while True:
                if as_int16:
                    raw = f.read(BLOCK_FRAMES, dtype="int16", always_2d=True)
                    if len(raw) == 0:
                        break
                    mixer.add_pcm16(raw)
                else:
                    block = f.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
                    if len(block) == 0:
                        break
                    mixer.add(block)
        except sf.LibsndfileError:  # cut off or damaged mid-stream (a FLAC "lost sync")
            warnings.append(_TRUNCATED)
            return _decode_pyav(src, s)  # FFmpeg reads up to the damage
        truncated = mixer.frames < f.frames or _riff_data_missing(src.head, src.size)
    if truncated and mixer.frames == 0:
        raise InvalidAudioError(
            f"{src.name} is truncated: it holds a header but no audio; record or export it again"
        )
    if truncated:
        warnings.append(_TRUNCATED)
    return mixer


def _declared_frames(container, stream) -> int | None:
    """Frames the container says the stream holds (None when it does not say)."""
    rate = stream.codec_context.sample_rate or 0
    if stream.duration and stream.time_base:
        return int(float(stream.duration * stream.time_base) * rate)
    if container.duration:
        return int(container.duration / 1_000_000 * rate)
    return None


#: Containers whose header records the length (a raw ADTS or MP3 stream's is estimated from
#: the bit rate, and a variable bit rate moves it by more than a cut would).
_LENGTH_IN_HEADER = frozenset({"matroska", "webm", "mov", "mp4", "m4a"})


def _decode_pyav(src: _Source, s: Settings, warnings: list[str] | None = None) -> _Mixer:
    """Decode compressed phone formats (webm/opus, mp4/aac, …) with FFmpeg via PyAV.

    A file that FFmpeg stops on part way, or that decodes to clearly less than its header
    says it holds, adds the truncation warning to ``warnings``.
    """
    import av

    try:
        with src.open() as stream, av.open(stream, mode="r") as container:
            if not container.streams.audio:
                raise NotAudioError("the file holds no audio track")
            stream = container.streams.audio[0]
            declared = _declared_frames(container, stream)
            length_in_header = bool(_LENGTH_IN_HEADER & set(container.format.name.split(",")))
            mixer = _Mixer(
                stream.codec_context.sample_rate or 48000,
                stream.codec_context.channels or 1,
                s,
                None,  # container durations are estimates: collect in pieces
            )
            if declared is not None and declared > mixer.limit * 1.01:
                mixer._too_long(declared / mixer.rate)
            resampler = av.AudioResampler(format="fltp")
            ended_early = False
            try:
                for frame in container.decode(stream):
                    for out in resampler.resample(frame):
                        mixer.add(out.to_ndarray().T)
            except av.error.FFmpegError as exc:
                if mixer.frames == 0:
                    raise
                log.warning("decoding stopped early: %s", exc)
                ended_early = True
            for out in resampler.resample(None):
                mixer.add(out.to_ndarray().T)
    except av.error.FFmpegError as exc:
        raise NotAudioError(_NOT_READABLE) from exc
    if mixer.frames == 0:
        raise NotAudioError("the file decodes to no audio at all; record again")
    short = length_in_header and declared is not None and mixer.frames < 0.95 * declared
    if warnings is not None and (ended_early or short):
        warnings.append(_TRUNCATED)
    return mixer


def _finish(mixer: _Mixer, s: Settings, warnings: list[str]) -> Recording:
    """The checks that need the whole recording; the validated Recording."""
    duration = mixer.frames / mixer.rate
    if mixer.frames == 0:
        raise InvalidAudioError("the recording holds no samples (0 s); record again")
    if duration < s.min_duration_s:
        raise InvalidAudioError(
            f"recording is {duration:.1f} s long; record at least {s.min_duration_s:g} s "
            "(10–30 s is best)"
        )
    variance = mixer.variance()
    if variance < s.silence_rms**2:
        raise InvalidAudioError(
            "the recording is silent; check that the microphone or stethoscope is "
            "connected and pressed to the chest, then record again"
        )
    # Clipping is counted before the mix and before resampling, which smear clipped peaks.
    clip_fraction = mixer.clipped / (mixer.frames * mixer.channels)
    if clip_fraction >= s.clip_warn_fraction:
        warnings.append(
            f"{clip_fraction:.0%} of the samples are clipped (too loud); lower the gain or "
            "press less hard"
        )
    if mixer.channels > 1:
        warnings.append(f"{mixer.channels}-channel audio was mixed down to mono")
    return Recording(
        samples=mixer.samples(),
        sample_rate=mixer.rate,
        channels=mixer.channels,
        warnings=tuple(warnings),
        clip_fraction=clip_fraction,
        variance=variance if mixer.channels == 1 else None,
    )


def load_audio(source: AudioSource, settings: Settings | None = None) -> Recording:
    """Decode and validate a recording from bytes or a path; the entry point for all audio.

    soundfile first (wav, flac, ogg, mp3, aiff), PyAV for the rest (webm/opus, mp4/aac/m4a),
    block by block with every check on the way (see :class:`_Mixer`). Raises
    :class:`NotAudioError` when the bytes are not audio at all and
    :class:`InvalidAudioError` when they are but cannot be analysed.
    """
    s = settings or get_settings()
    src = _source(source)
    if src.size == 0:
        raise NotAudioError(f"{src.name} is empty (0 bytes); record or export it again")
    warnings: list[str] = []
    mixer = _decode_soundfile(src, s, warnings)
    if mixer is None:
        mixer = _decode_pyav(src, s, warnings)
    elif mixer.frames == 0 and (found := _samples_after_empty_header(src, s)) is not None:
        mixer = found  # (_decode_soundfile refuses a truncated file with no audio)
        warnings.append(
            "the file's header says it holds no audio (the recorder may have stopped "
            "before finishing it); the audio after the header was used"
        )
    return _finish(mixer, s, warnings)


def _samples_after_empty_header(src: _Source, s: Settings) -> _Mixer | None:
    """The audio of a file whose header declares 0 frames, read to its end (None: none).

    A WAV recorder that is stopped before it writes the length leaves a data size of 0;
    libsndfile then reads nothing, FFmpeg reads the samples that follow.
    """
    try:
        return _decode_pyav(src, s)
    except NotAudioError:  # nothing after the header either (a too-long one still says so)
        return None


# --------------------------------------------------------------------------------------
# signal and features
# --------------------------------------------------------------------------------------
#: Inputs of at least this many samples are resampled as two halves at once, one on a second
#: thread (libsoxr lets go of the GIL): a 30 s 48 kHz phone recording's ~5.5 ms become ~4
#: (smaller inputs gain less than the thread costs). Each half runs this far into the other,
#: so the output kept near the seam is the filter's whole response; halves and whole agree
#: to float32 rounding (~1e-7).
_SPLIT_MIN_SAMPLES = 400_000
_SPLIT_OVERLAP_S = 0.5


def _soxr(x: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    import soxr

    return soxr.resample(x, from_hz, to_hz, quality="HQ").astype(np.float32, copy=False)


def resample(x: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample with libsoxr (its high-quality filter also rejects images and aliases)."""
    if from_hz == to_hz:
        return x
    x = np.asarray(x, dtype=np.float32)
    if len(x) < _SPLIT_MIN_SAMPLES:
        return _soxr(x, from_hz, to_hz)
    # Cut where input and output samples coincide: every step_in inputs, step_out outputs.
    g = math.gcd(from_hz, to_hz)
    step_in, step_out = from_hz // g, to_hz // g
    margin = math.ceil(_SPLIT_OVERLAP_S * g) * step_in
    cut = len(x) // 2 // step_in * step_in
    first = Background(_soxr, x[: cut + margin], from_hz, to_hz)
    second = _soxr(x[cut - margin :], from_hz, to_hz)
    head = first.result()[: cut // step_in * step_out]
    return np.concatenate([head, second[margin // step_in * step_out :]])


def band_signal(
    samples: np.ndarray, sample_rate: int, settings: Settings | None = None
) -> np.ndarray:
    """Mono samples at any rate → the training data's band, at ``band_rate`` (2 kHz).

    PhysioNet 2016 was recorded at 2 kHz, so nothing above 1 kHz exists in training: every
    recording first goes to 2 kHz (the resampler's anti-aliasing filter is the band's upper
    edge, as a 2 kHz stethoscope's was), then a 25–950 Hz band-pass removes breathing rumble
    and DC. Doing this at 2 kHz rather than 8 kHz costs a quarter of the filtering, and a
    phone's 48 kHz audio reaches the model through the same band as the training data.
    The filter runs forwards and backwards (zero phase), so heart sounds keep their timing.
    """
    s = settings or get_settings()
    return _band_filter(resample(np.asarray(samples, np.float32), int(sample_rate), s.band_rate), s)


def _band_filter(x: np.ndarray, s: Settings) -> np.ndarray:
    """The 25–950 Hz band-pass at ``band_rate``, zero phase."""
    bandpass = zero_phase(4, (s.band_low_hz, s.band_high_hz), "bandpass", s.band_rate)
    # float64 inside the filter: in float32 its state decays into denormals over digital
    # silence, which is three times slower
    return bandpass(x).astype(np.float32)


def robust_scale(x: np.ndarray) -> float:
    """The 99th percentile of ``|x|`` (1.0 for a flat signal): one click cannot set it."""
    magnitude = np.abs(x)
    k = int(0.99 * (len(magnitude) - 1))
    scale = float(np.partition(magnitude, k)[k])  # without a full sort
    return scale if scale > 0 else 1.0


def prepare_signal(
    samples: np.ndarray, sample_rate: int, settings: Settings | None = None
) -> np.ndarray:
    """Mono samples at any rate → band-limited, robustly normalised signal at 2 kHz.

    :func:`band_signal` divided by its 99th percentile of ``|x|`` rather than the peak, so one
    click or bump cannot shrink the heart sounds.
    """
    return _prepare(samples, sample_rate, settings or get_settings())[0]


def _variance(x: np.ndarray) -> float:
    """Variance of a 1-D signal via a BLAS dot product (float32 is plenty for a level)."""
    mean = float(np.sum(x, dtype=np.float32)) / max(len(x), 1)  # pairwise: accurate enough
    return max(float(np.dot(x, x)) / max(len(x), 1) - mean * mean, 0.0)


def high_band_share(
    samples: np.ndarray,
    sample_rate: int,
    at_band_rate: np.ndarray,
    band_rate: int,
    variance: float | None = None,
) -> float:
    """Share of a recording's power above the heart-sound band (≈ 1 kHz), 0–1.

    ``at_band_rate`` is the same recording resampled to ``band_rate`` Hz (2 kHz), which holds
    only the power below ~1 kHz. Heart sounds have almost none above it; speech, rubbing and
    room noise have most of theirs there. 0 for recordings sampled at 4 kHz or less, where
    there is too little above the band to tell. ``variance``: that of ``samples``, when known.
    """
    if sample_rate <= 2 * band_rate:
        return 0.0
    total = _variance(np.asarray(samples, np.float32)) if variance is None else variance
    if total <= 0:
        return 0.0
    return float(np.clip(1.0 - _variance(at_band_rate) / total, 0.0, 1.0))


def _prepare(
    samples: np.ndarray, sample_rate: int, s: Settings, variance: float | None = None
) -> tuple[np.ndarray, float]:
    """(normalised signal at ``band_rate``, high-band share); ``variance``: of ``samples``."""
    resampled = resample(np.asarray(samples, np.float32), int(sample_rate), s.band_rate)
    share = high_band_share(samples, sample_rate, resampled, s.band_rate, variance)
    band = _band_filter(resampled, s)
    return band * np.float32(1.0 / robust_scale(band)), share


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_region = hz >= 1000.0
    return np.where(
        log_region, 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / (np.log(6.4) / 27), mel
    )


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * (200.0 / 3)
    log_region = mel >= 15.0
    return np.where(log_region, 1000.0 * np.exp((np.log(6.4) / 27) * (mel - 15.0)), hz)


def mel_band_edges(n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """The ``n_mels + 2`` edge frequencies (Hz) of the mel filters: band k spans edges k…k+2."""
    return _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))


@lru_cache(maxsize=8)
def mel_filterbank(rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney-normalised triangular mel filters, shape ``(n_mels, n_fft // 2 + 1)``."""
    fft_hz = np.linspace(0, rate / 2, n_fft // 2 + 1)
    edges = mel_band_edges(n_mels, fmin, fmax)
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    weights = weights.astype(np.float32)  # float32 end to end: a float64 matmul is 5x slower
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=8)
def _hann(win_length: int, n_fft: int, gain: float) -> np.ndarray:
    w = np.zeros(n_fft)
    start = (n_fft - win_length) // 2
    w[start : start + win_length] = gain * sps.get_window("hann", win_length, fftbins=True)
    w = w.astype(np.float32)
    w.setflags(write=False)
    return w


#: Frames per block of the log-mel computation (see log_mel_db).
_MEL_CHUNK_FRAMES = 8192
#: Frames per FFT call inside a block: blocks of a few hundred kilobytes reuse the same
#: memory from call to call, where one 3 MB spectrum of a 30 s recording would be fresh pages
#: every time (on a 2-core machine, faulting them in cost more than the FFT itself).
_FFT_FRAMES = 512


def _mel_power(frames: np.ndarray, window: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mel power ``(n_mels, len(frames))`` of a block of frames.

    One FFT thread: a second one gained less than it cost on two cores, where the network
    and the other analyses need the second core (warm 30 s FLAC median ~1.5 ms faster).
    """
    n_bins = weights.shape[1]
    power = np.empty((len(frames), n_bins), dtype=np.float32)
    for i in range(0, len(frames), _FFT_FRAMES):
        spectrum = scipy.fft.rfft(frames[i : i + _FFT_FRAMES] * window, axis=1)[:, :n_bins]
        np.add(spectrum.real**2, spectrum.imag**2, out=power[i : i + _FFT_FRAMES])
    return weights @ power.T


def stft_lengths(settings: Settings | None = None) -> tuple[int, int, int]:
    """(n_fft, win_length, hop_length) counted at ``log_mel_rate``: the log-mel's windows are
    defined at ``sample_rate`` (8 kHz) and lose nothing taken from fewer samples."""
    s = settings or get_settings()
    scaled = [n * s.log_mel_rate / s.sample_rate for n in (s.n_fft, s.win_length, s.hop_length)]
    if s.log_mel_rate < s.band_rate or any(v != int(v) for v in scaled):
        raise AuscultError(
            f"log_mel_rate {s.log_mel_rate} Hz must be at least band_rate ({s.band_rate} Hz) "
            f"and divide the log-mel's windows (n_fft {s.n_fft}, win_length {s.win_length}, "
            f"hop_length {s.hop_length} at {s.sample_rate} Hz) into whole samples; use 2000, "
            "4000 or 8000"
        )
    n_fft, win_length, hop_length = (int(v) for v in scaled)
    return n_fft, win_length, hop_length


def log_mel_db(x: np.ndarray, settings: Settings | None = None) -> np.ndarray:
    """The 8 kHz log-mel power (dB) of a prepared signal at ``band_rate`` (2 kHz), shape
    ``(n_mels, n_frames)``.

    The spectrogram is defined at ``sample_rate`` (8 kHz): 50 ms Hann windows every 20 ms,
    15.6 Hz bins. A band-limited signal has nothing above 1 kHz, so the same windows and bins
    come from its 2 kHz samples (``log_mel_rate``) at a quarter of the cost; the window is
    scaled so that the levels in dB are those of the 8 kHz computation. Frames are centred
    (reflect padding); values are floored ``top_db`` below the loudest bin so silent stretches
    do not dominate.
    """
    s = settings or get_settings()
    x = resample(np.asarray(x, dtype=np.float32), s.band_rate, s.log_mel_rate)
    n_fft, win_length, hop_length = stft_lengths(s)
    pad = n_fft // 2
    x = np.pad(x, pad, mode="reflect" if len(x) > pad else "constant")
    n_frames = 1 + (len(x) - n_fft) // hop_length
    frames = np.lib.stride_tricks.as_strided(
        x, shape=(n_frames, n_fft), strides=(x.strides[0] * hop_length, x.strides[0])
    )
    weights = mel_filterbank(s.log_mel_rate, n_fft, s.n_mels, s.mel_fmin, s.mel_fmax)
    n_bins = int(np.flatnonzero(weights.any(axis=0))[-1]) + 1  # bins above fmax carry no weight
    window = _hann(win_length, n_fft, s.sample_rate / s.log_mel_rate)
    # A few thousand frames at a time: a 10-minute recording would otherwise need ~50 MB of
    # spectra at once (~200 MB from 8 kHz samples). Recordings up to ~2.7 minutes are one chunk.
    mel = np.concatenate(
        [
            _mel_power(frames[i : i + _MEL_CHUNK_FRAMES], window, weights[:, :n_bins])
            for i in range(0, n_frames, _MEL_CHUNK_FRAMES)
        ],
        axis=1,
    )
    db = 10.0 * np.log10(np.maximum(mel, 1e-12))
    return np.maximum(db, db.max() - s.top_db).astype(np.float32)


def normalise_bands(db: np.ndarray) -> np.ndarray:
    """Remove each mel band's mean over the recording and scale to about unit range.

    This cancels most of a stethoscope's or phone's colouring (a fixed EQ is a constant
    offset per band in dB), the biggest lever for carrying the model to other devices.
    """
    db = np.asarray(db, dtype=np.float32)
    return ((db - db.mean(axis=1, keepdims=True)) / 10.0).astype(np.float32)


def coarse_bands(features: np.ndarray, group: int) -> np.ndarray:
    """Each run of ``group`` neighbouring mel bands replaced by its mean (the CNN's view).

    With ``group`` 4 the CNN reads the band envelopes' timing at a quarter of the log-mel's
    frequency detail, less of the fine spectral texture a device leaves as much as a murmur
    (``Settings.band_group``; models/experiments.md, session 28). Shape is kept, so the
    network and every plot of ``features`` stay as they are.
    """
    if group <= 1:
        return features
    n_mels, n_frames = features.shape
    if n_mels % group:
        raise ValueError(f"{n_mels} mel bands do not split into groups of {group}")
    means = features.reshape(n_mels // group, group, n_frames).mean(axis=1)
    return np.repeat(means, group, axis=0).astype(np.float32)


def cnn_windows(features: np.ndarray, settings: Settings) -> tuple[np.ndarray, np.ndarray, bool]:
    """The model windows of normalised ``features``, read as the CNN reads them."""
    return frame_windows(coarse_bands(features, settings.band_group), settings)


def frame_windows(
    features: np.ndarray, settings: Settings | None = None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Cut ``(n_mels, n_frames)`` features into overlapping model windows.

    Windows start every ``window_hop_s``; one more window is aligned to the end so the
    whole recording is covered. A recording shorter than one window is repeated to fill it
    (``padded=True``). Returns (windows, start times in s, padded).
    """
    s = settings or get_settings()
    width, hop = s.window_frames, s.window_hop_frames
    n = features.shape[1]
    padded = n < width
    if padded:
        features = np.pad(features, ((0, 0), (0, width - n)), mode="wrap")
        n = width
    starts = list(range(0, n - width + 1, hop))
    if starts[-1] != n - width:
        starts.append(n - width)
    windows = np.stack([features[:, i : i + width] for i in starts]).astype(np.float32)
    seconds = np.asarray(starts, dtype=np.float64) * s.hop_length / s.sample_rate
    return windows, seconds, padded


def model_input(recording: Recording, settings: Settings | None = None) -> ModelInput:
    """The model input for a whole recording, built by the one front-end path."""
    s = settings or get_settings()
    band, share = _prepare(recording.samples, recording.sample_rate, s, recording.variance)
    features = normalise_bands(log_mel_db(band, s))
    windows, starts, padded = cnn_windows(features, s)
    return ModelInput(
        windows=windows,
        window_starts_s=starts,
        features=features,
        band=band,
        high_band_share=share,
        padded=padded,
    )
