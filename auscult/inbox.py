"""Deliver a recording into the desktop inbox: validated, atomically written, registered.

Used by the phone recording page and any API that accepts recordings. One call does all of:

1. refuse anything larger than ``settings.max_upload_bytes`` (:class:`UploadTooLargeError`);
2. decode and validate it with the audio front end, so only real, usable audio lands
   (:class:`NotAudioError` when it does not decode at all, :class:`InvalidAudioError` when
   it decodes but cannot be analysed — too short, silent, …);
3. choose the file name on the server (time stamp, site, random id; never the client's);
4. write it to a hidden temporary file in ``settings.inbox_dir`` and ``os.replace`` it into
   place, so a reader never sees half a file;
5. add a *pending* row to the history store, which the analyzer's inbox polls.

If the store cannot take the row, the file is removed again: a recording is either in the
inbox with its row or not there at all.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import utils
from auscult.errors import (
    InvalidAudioError,
    InvalidRequestError,
    NotAudioError,
    UploadTooLargeError,
)
from auscult.store import SITES, SOURCES, Store
from config import Settings, get_settings

__all__ = [
    "Delivery",
    "audio_extension",
    "deliver_recording",
    "inbox_filename",
    "write_atomically",
]

log = logging.getLogger(__name__)

#: Leading bytes of the containers browsers and recorders produce → file ending.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"RIFF", ".wav"),
    (0, b"RIFX", ".wav"),
    (0, b"fLaC", ".flac"),
    (0, b"OggS", ".ogg"),
    (0, b"\x1aE\xdf\xa3", ".webm"),
    (4, b"ftyp", ".m4a"),
    (0, b"ID3", ".mp3"),
    (0, b"\xff\xfb", ".mp3"),
    (0, b"\xff\xf3", ".mp3"),
    (0, b"\xff\xf2", ".mp3"),
    (0, b"FORM", ".aiff"),
    (0, b"caff", ".caf"),
    (0, b"\xff\xf1", ".aac"),
    (0, b"\xff\xf9", ".aac"),
)


@dataclass(frozen=True)
class Delivery:
    """A recording that is now in the inbox with a pending history row."""

    entry_id: int
    path: Path
    filename: str
    size_bytes: int
    duration_s: float
    sample_rate: int  # Hz, as decoded
    site: str | None
    warnings: tuple[str, ...]


def audio_extension(data: bytes) -> str:
    """File ending for encoded audio, from its leading bytes (``.audio`` when unknown)."""
    for offset, magic, ext in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return ext
    return ".audio"


def inbox_filename(source: str, site: str | None, ext: str, now: datetime | None = None) -> str:
    """A server-chosen, unique, sortable name: ``phone-20250101-120000-mitral-1a2b3c4d.wav``."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    parts = [source, stamp] + ([site] if site else []) + [uuid.uuid4().hex[:8]]
    return "-".join(parts) + ext


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); harmless to skip where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomically(folder: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``folder/name`` so that no reader ever sees half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    # Hidden ``.part`` name: folder scanners skip it, and it is on the same file system as
    # the target, so os.replace is an atomic rename.
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        target = folder / name
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(folder)
    return target


def deliver_recording(
    data: bytes,
    *,
    store: Store,
    site: str | None = None,
    source: str = "phone",
    settings: Settings | None = None,
) -> Delivery:
    """Validate ``data`` (encoded audio), write it into the inbox and add a pending row.

    Raises
    ------
    UploadTooLargeError
        ``data`` is larger than ``settings.max_upload_bytes``.
    NotAudioError
        ``data`` is not audio in any format the front end reads.
    InvalidAudioError
        It is audio but cannot be analysed (too short, silent, unsupported rate, …).
    InvalidRequestError
        ``site`` or ``source`` is not one the store knows.
    """
    s = settings or get_settings()
    if site is not None and site not in SITES:
        raise InvalidRequestError(
            f"unknown auscultation site {site!r}; choose one of {', '.join(SITES)}"
        )
    if source not in SOURCES:
        raise InvalidRequestError(f"unknown source {source!r}; expected one of {SOURCES}")
    if len(data) > s.max_upload_bytes:
        raise UploadTooLargeError(
            f"the recording is {len(data) / 1e6:.1f} MB; the limit is "
            f"{s.max_upload_bytes / 1e6:.0f} MB — record a shorter stretch (10–30 s is enough)"
        )
    # The same two steps as utils.load_audio: decoding raises NotAudioError (HTTP 415),
    # validation InvalidAudioError (422).
    try:
        samples, rate, decode_warnings = utils.decode_audio(bytes(data))
    except InvalidAudioError:
        raise
    except Exception as exc:  # a decoder failing in a way utils did not foresee
        raise NotAudioError(
            "this upload is not a readable audio recording; record again or send a WAV file"
        ) from exc
    warnings, _ = utils.validate_audio(samples, rate, s)
    duration = samples.shape[0] / rate

    name = inbox_filename(source, site, audio_extension(data))
    path = write_atomically(Path(s.inbox_dir), name, bytes(data))
    try:
        entry_id = store.add_pending(source=source, filename=name, audio_path=path, site=site)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    log.info("stored %s (%.1f s, %d Hz, site %s) as entry %d", name, duration, rate, site, entry_id)
    return Delivery(
        entry_id=entry_id,
        path=path,
        filename=name,
        size_bytes=len(data),
        duration_s=duration,
        sample_rate=rate,
        site=site,
        warnings=decode_warnings + warnings,
    )
