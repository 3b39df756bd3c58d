"""Delivery into the desktop inbox: validated, atomic, named by the server, with a store row."""

from __future__ import annotations

import dataclasses
import io
import os

import numpy as np
import pytest
import soundfile as sf

from auscult.errors import InvalidAudioError, NotAudioError, UploadTooLargeError
from auscult.inbox import (
    audio_extension,
    deliver_recording,
    inbox_filename,
)
from auscult.store import Store
from config import Settings


def heart_wav(seconds: float = 5.0, rate: int = 8000, fmt: str = "WAV") -> bytes:
    """A heart-like test signal: 40 Hz bursts at 72 bpm over faint noise, as 16-bit audio."""
    t = np.arange(int(seconds * rate)) / rate
    beat = (t % (60 / 72)) < 0.08
    x = 0.4 * np.sin(2 * np.pi * 40 * t) * beat + 0.01 * np.random.default_rng(0).standard_normal(
        t.size
    )
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), rate, format=fmt, subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return dataclasses.replace(Settings(), work_dir=tmp_path / "work")


@pytest.fixture
def store(settings):
    s = Store(settings.db_path)
    yield s
    s.close()


def test_valid_wav_lands_in_inbox_with_pending_row(settings, store):
    data = heart_wav()
    d = deliver_recording(data, store=store, site="mitral", settings=settings)
    assert d.path.parent == settings.inbox_dir
    assert d.path.read_bytes() == data
    assert d.path.suffix == ".wav"
    assert d.duration_s == pytest.approx(5.0)
    entry = store.get(d.entry_id)
    assert entry.status == "pending"
    assert entry.source == "phone"
    assert entry.site == "mitral"
    assert entry.audio_path == str(d.path)
    assert entry.filename == d.filename
    assert [e.id for e in store.pending()] == [d.entry_id]


def test_inbox_holds_no_temporary_files_after_delivery(settings, store):
    deliver_recording(heart_wav(), store=store, settings=settings)
    assert [p.name for p in settings.inbox_dir.iterdir() if p.name.startswith(".")] == []


def test_names_are_chosen_by_the_server_and_unique(settings, store):
    a = deliver_recording(heart_wav(), store=store, site="aortic", settings=settings)
    b = deliver_recording(heart_wav(), store=store, site="aortic", settings=settings)
    assert a.filename != b.filename
    assert a.entry_id != b.entry_id
    assert a.filename.startswith("phone-")
    assert "-aortic-" in a.filename
    assert "/" not in a.filename
    assert ".." not in a.filename


def test_flac_keeps_its_own_extension(settings, store):
    d = deliver_recording(heart_wav(fmt="FLAC"), store=store, settings=settings)
    assert d.path.suffix == ".flac"


def test_too_large_is_refused_before_decoding(settings, store):
    small = dataclasses.replace(settings, max_upload_bytes=1000)
    with pytest.raises(UploadTooLargeError, match="limit is"):
        deliver_recording(heart_wav(), store=store, settings=small)
    assert not settings.inbox_dir.exists() or not any(settings.inbox_dir.iterdir())


def test_non_audio_is_refused_with_a_human_message(settings, store):
    with pytest.raises(NotAudioError, match="not a readable audio recording"):
        deliver_recording(b"<html>hello</html>" * 50, store=store, settings=settings)
    assert store.pending() == []


def test_unusable_audio_is_refused_with_the_front_end_message(settings, store):
    with pytest.raises(InvalidAudioError, match="record at least 2 s") as info:
        deliver_recording(heart_wav(seconds=1.0), store=store, settings=settings)
    assert not isinstance(info.value, NotAudioError)
    silent = io.BytesIO()
    sf.write(silent, np.zeros(8000 * 5, np.float32), 8000, format="WAV", subtype="PCM_16")
    with pytest.raises(InvalidAudioError, match="silent"):
        deliver_recording(silent.getvalue(), store=store, settings=settings)


def test_unknown_site_is_refused(settings, store):
    with pytest.raises(ValueError, match="unknown auscultation site"):
        deliver_recording(heart_wav(), store=store, site="../etc", settings=settings)


def test_file_is_removed_when_the_store_refuses_the_row(settings, store, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("the database is locked")

    monkeypatch.setattr(store, "add_receiving", broken)
    with pytest.raises(RuntimeError):
        deliver_recording(heart_wav(), store=store, settings=settings)
    assert list(settings.inbox_dir.iterdir()) == []


def test_write_is_atomic_via_replace(settings, store, monkeypatch):
    calls = []
    real_replace = os.replace

    def spy(src, dst):
        if os.path.dirname(dst) == str(settings.inbox_dir):  # (not other threads' heartbeats)
            calls.append((os.path.basename(src), os.path.basename(dst)))
            assert os.path.dirname(src) == os.path.dirname(dst)  # same folder: atomic rename
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    d = deliver_recording(heart_wav(), store=store, settings=settings)
    assert len(calls) == 1
    assert calls[0][0].startswith(".")
    assert calls[0][0].endswith(".part")
    assert calls[0][1] == d.filename


def test_audio_extension_sniffs_content():
    assert audio_extension(b"RIFF....WAVEfmt ") == ".wav"
    assert audio_extension(b"\x1aE\xdf\xa3rest") == ".webm"
    assert audio_extension(b"\x00\x00\x00\x20ftypM4A ") == ".m4a"
    assert audio_extension(b"garbage") == ".audio"


def test_inbox_filename_without_site():
    name = inbox_filename("phone", None, ".wav")
    assert name.startswith("phone-")
    assert name.endswith(".wav")
    assert name.count("-") == 3
