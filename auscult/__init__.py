"""Auscult analysis core: plain Python, no UI or web imports (see ARCHITECTURE.md §1)."""

from auscult.errors import AuscultError, InvalidAudioError, ModelNotFoundError

__all__ = ["AuscultError", "InvalidAudioError", "ModelNotFoundError"]
