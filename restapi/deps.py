"""FastAPI dependencies: the settings, the service (store + analyzer), the API key, and the
bounded pool that runs analyses off the event loop."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from auscult.errors import BusyError, NotPairedError
from auscult.service import Service

__all__ = ["AnalysisSlots", "get_service", "get_slots", "require_key"]

KEY_HEADER = "X-API-Key"
T = TypeVar("T")


class AnalysisSlots:
    """At most ``size`` analyses at once; a request waits up to ``wait_s`` for a slot, then
    gets 503 with ``Retry-After`` — never a timeout."""

    def __init__(self, size: int, wait_s: float) -> None:
        self.size = size
        self.wait_s = wait_s
        self._sem = asyncio.Semaphore(size)
        self.in_flight = 0
        self.waiting = 0

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in a worker thread once a slot is free."""
        self.waiting += 1
        try:
            await asyncio.wait_for(self._sem.acquire(), timeout=self.wait_s)
        except TimeoutError:
            raise BusyError(
                f"all {self.size} analysis slots are busy; try again in a second",
                retry_after_s=1,
            ) from None
        finally:
            self.waiting -= 1
        self.in_flight += 1
        try:
            return await run_in_threadpool(fn, *args, **kwargs)
        finally:
            self.in_flight -= 1
            self._sem.release()


def get_service(request: Request) -> Service:
    return request.app.state.service


def get_slots(request: Request) -> AnalysisSlots:
    return request.app.state.slots


def require_key(request: Request) -> None:
    """The ``X-API-Key`` header must match ``settings.api_key`` whenever one is set."""
    key: str = request.app.state.settings.api_key
    if not key:
        return  # only allowed on loopback: api.create_app refuses otherwise
    given = request.headers.get(KEY_HEADER, "")
    if not hmac.compare_digest(given.encode(), key.encode()):
        raise NotPairedError(f"this API needs a valid key in the {KEY_HEADER} header")
