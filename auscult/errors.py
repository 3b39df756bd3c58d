"""The project's one error family: every message says what is wrong and what to do.

Each error knows the HTTP status a web door (REST API, phone page) answers with, so no door
maps errors by hand; ``str(err)`` is the message for a clinician, never a stack trace.
"""

from __future__ import annotations

__all__ = [
    "AuscultError",
    "BusyError",
    "InvalidAudioError",
    "InvalidEcgError",
    "InvalidRequestError",
    "ModelNotFoundError",
    "NotAudioError",
    "NotFoundError",
    "NotPairedError",
    "StorageFullError",
    "UploadTooLargeError",
]


class AuscultError(Exception):
    """Base class of every error Auscult raises on purpose; ``str(err)`` is for a clinician."""

    http_status = 500
    title = "Auscult could not do this"


class InvalidAudioError(AuscultError, ValueError):
    """The input cannot be analysed as a heart-sound recording (the message says why)."""

    http_status = 422
    title = "The recording cannot be analysed"


class NotAudioError(InvalidAudioError):
    """The bytes do not decode as audio at all (as opposed to unusable audio)."""

    http_status = 415
    title = "Not an audio recording"


class UploadTooLargeError(AuscultError):
    """The upload is larger than ``settings.max_upload_bytes``."""

    http_status = 413
    title = "The recording is too large"

    @classmethod
    def of(cls, size: int, limit: int) -> UploadTooLargeError:
        """The error for an upload of ``size`` bytes against a limit of ``limit``."""
        return cls(
            f"the recording is {size / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB — record "
            "or send a shorter stretch (10–30 s is enough)"
        )


class InvalidEcgError(AuscultError, ValueError):
    """The input cannot be analysed as an ECG (the message says why and what to send)."""

    http_status = 422
    title = "The ECG cannot be analysed"


class InvalidRequestError(AuscultError, ValueError):
    """A request names something that does not exist here (an unknown site, a bad filter)."""

    http_status = 422
    title = "The request is not valid"


class NotFoundError(AuscultError, LookupError):
    """The analysis (or its audio) asked for is not in the history."""

    http_status = 404
    title = "Not found"


class NotPairedError(AuscultError, PermissionError):
    """The caller lacks the pairing token or API key."""

    http_status = 403
    title = "Not allowed"


class BusyError(AuscultError):
    """Every analysis slot is taken; the caller should retry after ``retry_after_s``."""

    http_status = 503
    title = "Busy"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StorageFullError(AuscultError, OSError):
    """The disk (or the history database) is full: nothing was stored."""

    http_status = 507
    title = "The computer's disk is full"


class ModelNotFoundError(AuscultError, FileNotFoundError):
    """The committed model files are missing or do not match ``models/metadata.json``."""

    http_status = 503
    title = "The model is not available"
