"""The project's one error family: every message says what is wrong and what to do."""

from __future__ import annotations

__all__ = ["AuscultError", "InvalidAudioError", "ModelNotFoundError"]


class AuscultError(Exception):
    """Base class of every error Auscult raises on purpose; ``str(err)`` is for a clinician."""


class InvalidAudioError(AuscultError, ValueError):
    """The input cannot be analysed as a heart-sound recording (the message says why)."""


class ModelNotFoundError(AuscultError, FileNotFoundError):
    """The committed model files are missing or do not match ``models/metadata.json``."""
