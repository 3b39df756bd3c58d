"""Running one call on a second core while the caller goes on with other work."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Background"]


class Background:
    """One call on its own thread; :meth:`result` waits for it and re-raises its error.

    Worth it only for calls that let go of the GIL for most of their time (LiteRT's invoke,
    libsoxr). A plain thread per call, not a pool: nothing is left behind for a forked batch
    worker to inherit half-alive.
    """

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self._value = fn(*args)
        except BaseException as exc:  # handed to the caller in result()
            self._error = exc

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value
