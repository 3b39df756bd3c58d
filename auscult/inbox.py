"""Deliver a recording into the desktop inbox: validated, atomically written, registered.

Used by the phone recording page and any API that accepts recordings. One call does all of:

1. refuse anything larger than ``settings.max_upload_bytes`` (:class:`UploadTooLargeError`);
2. return the stored entry when the sender's recording id (``client_id``) is known already,
   so a retry after a lost answer is not stored twice;
3. decode and validate it with the audio front end, so only real, usable audio lands
   (:class:`NotAudioError` when it does not decode at all, :class:`InvalidAudioError` when
   it decodes but cannot be analysed — too short, silent, …);
4. choose the file name on the server (time stamp, site, random id; never the client's);
5. write it to a hidden ``.part`` file in ``settings.inbox_dir`` (folder scans skip it),
   add its row (*receiving*), rename the file into place, then mark the row *pending* for
   the worker. The row exists before the file is visible, so the folder scan never
   registers it a second time; a crash at any step leaves either nothing, or debris that
   :func:`clean_debris` and ``Store.recover_receiving`` settle.

A full disk is :class:`StorageFullError` (HTTP 507), with nothing left behind.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import utils
from auscult.errors import (
    InvalidAudioError,
    InvalidRequestError,
    NotAudioError,
    StorageFullError,
    UploadTooLargeError,
)
from auscult.store import RECEIVING, SITES, SOURCES, Entry, Store
from config import Settings, get_settings

__all__ = [
    "Delivery",
    "audio_extension",
    "clean_debris",
    "is_disk_full",
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
    duplicate: bool = False  # the sender's retry of a recording stored before


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


#: Said when the disk is full, wherever Auscult tries to write.
DISK_FULL = "the computer's disk is full; free some space on it and send the recording again"


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc).lower()


def write_hidden(folder: Path, data: bytes) -> Path:
    """Write ``data`` durably to a hidden ``.part`` file in ``folder``; its path.

    Folder scans skip hidden files, and the file is on the target's file system, so a
    later ``os.replace`` is an atomic rename. A full disk is :class:`StorageFullError`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(exc):
            raise StorageFullError(DISK_FULL) from exc
        raise
    return Path(tmp)


def move_into_place(part: Path, target: Path) -> Path:
    """Rename a hidden part file to its final name, durably."""
    os.replace(part, target)
    _fsync_dir(target.parent)
    return target


def write_atomically(folder: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``folder/name`` so that no reader ever sees half a file."""
    part = write_hidden(folder, data)
    try:
        return move_into_place(part, folder / name)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def clean_debris(folders: list[Path], older_than_s: float = 120.0) -> int:
    """Delete hidden ``.part`` files a crash left behind (older than ``older_than_s``)."""
    removed = 0
    cutoff = time.time() - older_than_s
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.glob(".*.part"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError:  # gone already, or not ours to delete
                continue
    if removed:
        log.info("removed %d unfinished upload file(s) left by a crash", removed)
    return removed


def deliver_recording(
    data: bytes,
    *,
    store: Store,
    site: str | None = None,
    source: str = "phone",
    client_id: str | None = None,
    settings: Settings | None = None,
    patient_id: str | None = None,
) -> Delivery:
    """Validate ``data`` (encoded audio), write it into the inbox and add a pending row
    (under ``patient_id``, the patient/exam id the desktop has open, when given).

    Raises
    ------
    UploadTooLargeError
        ``data`` is larger than ``settings.max_upload_bytes``.
    NotAudioError
        ``data`` is not audio in any format the front end reads.
    InvalidAudioError
        It is audio but cannot be analysed (too short, silent, unsupported rate, …).
    InvalidRequestError
        ``site``, ``source`` or ``client_id`` is not acceptable.
    StorageFullError
        The disk or the database is full; nothing was stored.
    """
    s = settings or get_settings()
    if site is not None and site not in SITES:
        raise InvalidRequestError(
            f"unknown auscultation site {site!r}; choose one of {', '.join(SITES)}"
        )
    if source not in SOURCES:
        raise InvalidRequestError(f"unknown source {source!r}; expected one of {SOURCES}")
    if client_id is not None and not (0 < len(client_id) <= 100 and client_id.isprintable()):
        raise InvalidRequestError("the recording id must be 1–100 printable characters")
    if len(data) > s.max_upload_bytes:
        raise UploadTooLargeError.of(len(data), s.max_upload_bytes)
    if client_id is not None and (known := _settled(store, source, client_id)) is not None:
        return _delivery_of(known, len(data), duplicate=True)
    # Decoding raises NotAudioError (HTTP 415), validation InvalidAudioError (422).
    try:
        recording = utils.load_audio(bytes(data), s)
    except InvalidAudioError:
        raise
    except Exception as exc:  # a decoder failing in a way utils did not foresee
        raise NotAudioError(
            "this upload is not a readable audio recording; record again or send a WAV file"
        ) from exc
    duration, rate, warnings = recording.duration_s, recording.sample_rate, recording.warnings
    del recording  # only what it says was needed: the worker decodes the file again

    name = inbox_filename(source, site, audio_extension(data))
    target = Path(s.inbox_dir) / name
    part = write_hidden(Path(s.inbox_dir), bytes(data))
    try:
        entry_id = store.add_receiving(
            source=source, filename=name, audio_path=target, site=site, client_id=client_id,
            patient_id=patient_id,
        )  # fmt: skip
    except sqlite3.IntegrityError:  # the same recording id arrived twice at once
        part.unlink(missing_ok=True)
        known = store.by_client_id(source, client_id) if client_id else None
        if known is None:
            raise
        return _delivery_of(known, len(data), duplicate=True)
    except BaseException as exc:
        part.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise StorageFullError(DISK_FULL) from exc
        raise
    try:
        move_into_place(part, target)
    except BaseException:
        part.unlink(missing_ok=True)  # only our own hidden file: never one a row points to
        store.delete(entry_id)
        raise
    if not store.mark_pending(entry_id):  # a retry of this recording took over meanwhile
        target.unlink(missing_ok=True)
        raise InvalidRequestError("this recording was sent again meanwhile; the retry stored it")
    log.info("stored %s (%.1f s, %d Hz, site %s) as entry %d", name, duration, rate, site, entry_id)
    return Delivery(
        entry_id=entry_id,
        path=target,
        filename=name,
        size_bytes=len(data),
        duration_s=duration,
        sample_rate=rate,
        site=site,
        warnings=warnings,
    )


#: How long a retry waits for an earlier delivery of the same recording to finish: the gap
#: it waits out is one row insert and one rename, so a fraction of a second is plenty.
_TAKE_OVER_AFTER_S = 0.25


def _settled(store: Store, source: str, client_id: str) -> Entry | None:
    """The stored entry of a recording sent before, or None to store it (again).

    An earlier delivery still *receiving* either finishes within moments or died with its
    process (the sender got no answer, hence this retry): after a short wait its row is
    taken over — kept when its file is in place, removed when it never landed.
    """
    deadline = time.monotonic() + _TAKE_OVER_AFTER_S
    while (known := store.by_client_id(source, client_id)) is not None:
        if known.status != RECEIVING:
            return known
        if known.audio_path and Path(known.audio_path).is_file():
            store.mark_pending(known.id)  # landed; its process died before saying so
            return store.get(known.id)
        if time.monotonic() > deadline:
            store.delete(known.id)  # never landed: this retry stores it
            return None
        time.sleep(0.05)
    return None


def _delivery_of(entry, size: int, *, duplicate: bool) -> Delivery:
    """The delivery a stored entry stands for (a sender's retry gets the first answer again)."""
    return Delivery(
        entry_id=entry.id,
        path=Path(entry.audio_path or ""),
        filename=entry.filename,
        size_bytes=size,
        duration_s=float(entry.duration_s or 0.0),
        sample_rate=int((entry.result or {}).get("sample_rate", 0)),
        site=entry.site,
        warnings=(),
        duplicate=duplicate,
    )
