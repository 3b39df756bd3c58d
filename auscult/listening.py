"""Audio to listen to: every recording as a WAV that browsers play, optionally as a bell hears it.

Browsers refuse audio below ~8 kHz (PhysioNet's 2 kHz files show "0:00 / 0:00"), and many do
not play FLAC or CAF at all. ``playable_wav`` decodes any recording the analyzer accepts,
resamples it to 8 kHz (16 kHz for wide-band phone audio), optionally filters it to 25–400 Hz
like a stethoscope's bell (heart sounds and most murmurs, without hiss), normalises the level
so a quiet recording is audible, and returns a 16-bit mono WAV.
"""

from __future__ import annotations

import io

import numpy as np

import utils
from auscult.filters import zero_phase
from config import Settings, get_settings

__all__ = ["BELL_HZ", "playable_wav"]

#: The band a stethoscope's bell passes: heart sounds and murmurs, not hiss or speech.
BELL_HZ = (25.0, 400.0)


def playable_wav(
    source: utils.AudioSource, settings: Settings | None = None, *, bell: bool = False
) -> bytes:
    """A WAV of the recording that every browser plays (raises InvalidAudioError like
    ``utils.load_audio`` for audio that cannot be read)."""
    import soundfile as sf

    s = settings or get_settings()
    recording = utils.load_audio(source, s)
    rate = 8000 if recording.sample_rate <= 8000 else 16000
    x = utils.resample(recording.samples, recording.sample_rate, rate).astype(np.float64)
    if bell:
        x = zero_phase(4, BELL_HZ, "bandpass", rate)(x)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 0:
        x *= 0.9 / peak
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()
