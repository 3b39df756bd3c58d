"""Shared fixtures: settings on a temporary work folder, synthetic recordings, audio encoders.

Encoders are fixtures that return functions, so a test can write any signal in any format:

    def test_x(wav_bytes, heart_8k):
        data = wav_bytes(heart_8k, 8000)

Compressed phone formats (WebM/Opus as Chrome records, MP4/AAC as Safari records) are encoded
at test time with the FFmpeg bundled in PyAV, so no binary fixtures live in the repository.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from auscult import synthetic
from auscult.phone_channel import encode_phone
from config import Settings, get_settings

#: Sample rate (Hz) and length (s) of the synthetic recordings the fixtures hand out.
RATE = 8000
DURATION_S = 20.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Default settings (no ``AUSCULT_*`` variables) with every runtime file under tmp_path."""
    return dataclasses.replace(Settings(), work_dir=tmp_path / "work")


@pytest.fixture
def new_release(settings: Settings, tmp_path: Path) -> Callable[[str], Settings]:
    """``new_release(version)``: settings whose committed model (``models/``) is a newer
    release's — the same network under another version name."""

    def make(version: str) -> Settings:
        models = tmp_path / f"release-{version}" / "models"
        models.mkdir(parents=True)
        shutil.copyfile(settings.tflite_path, models / settings.tflite_path.name)
        card = json.loads(settings.metadata_path.read_text())
        card["version"] = version
        (models / "metadata.json").write_text(json.dumps(card))
        return dataclasses.replace(settings, models_dir=models)

    return make


@pytest.fixture(scope="session")
def physionet_dir() -> Path:
    """The PhysioNet 2016 folder from the settings; skips the test when it is not there."""
    folder = get_settings().data_dir
    if not (folder / "training-a" / "REFERENCE.csv").is_file():
        pytest.skip(
            f"PhysioNet 2016 data not found at {folder} (needs training-a … training-f); "
            "set AUSCULT_DATA_DIR or run scripts/download_physionet.py"
        )
    return folder


@pytest.fixture(scope="session")
def heart_8k() -> np.ndarray:
    """20 s of a normal 72 bpm heart sound at 8 kHz, float32 in ±1 (read-only)."""
    x = synthetic.heart_sound(DURATION_S, RATE, bpm=72, seed=1)
    x.setflags(write=False)
    return x


@pytest.fixture(scope="session")
def murmur_8k() -> np.ndarray:
    """20 s of a 72 bpm heart sound with a systolic murmur at 8 kHz (read-only)."""
    x = synthetic.heart_sound(DURATION_S, RATE, bpm=72, murmur=True, seed=1)
    x.setflags(write=False)
    return x


@pytest.fixture(scope="session")
def noise_8k() -> np.ndarray:
    """20 s of white noise at 8 kHz, RMS 0.1 (read-only)."""
    x = synthetic.noise(DURATION_S, RATE, seed=1)
    x.setflags(write=False)
    return x


def _soundfile_bytes(
    samples: np.ndarray, rate: int, format: str = "WAV", subtype: str | None = None
) -> bytes:
    """Encode ``(n,)`` or ``(n, channels)`` samples with libsndfile into bytes."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.asarray(samples), rate, format=format, subtype=subtype)
    return buf.getvalue()


@pytest.fixture(scope="session")
def wav_bytes() -> Callable[..., bytes]:
    """``wav_bytes(samples, rate, subtype="PCM_16") -> bytes``: a WAV file in memory."""

    def encode(samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
        return _soundfile_bytes(samples, rate, "WAV", subtype)

    return encode


@pytest.fixture(scope="session")
def soundfile_bytes() -> Callable[..., bytes]:
    """``soundfile_bytes(samples, rate, format, subtype=None) -> bytes`` (FLAC, OGG, MP3…)."""
    return _soundfile_bytes


@pytest.fixture(scope="session")
def phone_bytes() -> Callable[..., bytes]:
    """``phone_bytes(samples, rate, container) -> bytes``: WebM/Opus, MP4/AAC or ADTS via PyAV."""
    return encode_phone
