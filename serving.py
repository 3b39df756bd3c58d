"""How Auscult's HTTP servers (the phone page, the REST API) run: uvicorn with guards.

A server on the LAN meets idle, half-open and deliberately slow clients. Here:

- the soft open-files limit is raised to the hard one, so a thousand idle connections do
  not exhaust the process (``raise_open_files_limit``; the launcher does it for its
  children too);
- a connection must deliver a complete request head within ``request_head_s`` of opening
  (and a kept-alive one within ``keep_alive_s`` of its last answer), or it is closed
  (:class:`GuardedH11Protocol`): no slow-header attack holds a connection open;
- each chunk of a request body must arrive within ``body_idle_s`` (:class:`BodyTimeout`):
  a body trickled in too slowly is answered 408 and its memory freed;
- at most ``max_connections`` connections and tasks at once; more get 503 from uvicorn.

The four figures are settings (``config.py``, ``AUSCULT_*``).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from auscult.errors import AuscultError, UploadTooLargeError
from config import get_settings

__all__ = [
    "BodyTimeout",
    "GuardedH11Protocol",
    "RequestTooSlowError",
    "raise_open_files_limit",
    "read_body",
    "run",
]

log = logging.getLogger(__name__)


class RequestTooSlowError(AuscultError):
    """A request body stalled: the client (or its network) stopped sending."""

    http_status = 408
    title = "The recording arrived too slowly"


async def read_body(request: Any, limit: int) -> bytes:
    """A request body, refused from its Content-Length or as soon as it passes ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UploadTooLargeError.of(int(declared), limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise UploadTooLargeError.of(len(body), limit)
    return bytes(body)


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard one; returns (soft, hard) now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # some systems cap it lower than they report
            log.warning("could not raise the open-files limit from %d", soft)
    return soft, hard


def _guarded_protocol() -> type:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class _Guarded(H11Protocol):
        """uvicorn's h11 protocol that closes a connection sending no complete request head."""

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            head_s = get_settings().request_head_s
            self._head_deadline = self.loop.call_later(head_s, self._too_slow)

        def _too_slow(self) -> None:
            if self.cycle is None and not self.transport.is_closing():
                self.transport.close()  # no request head in time: free the connection

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and self._head_deadline is not None:
                self._head_deadline.cancel()  # a request started: the head was complete
                self._head_deadline = None

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
            super().connection_lost(exc)

    return _Guarded


GuardedH11Protocol = _guarded_protocol()


class BodyTimeout:
    """ASGI middleware: a body chunk that takes longer than ``idle_s`` fails the request."""

    def __init__(self, app: Any, idle_s: float) -> None:
        self.app = app
        self.idle_s = idle_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def guarded_receive():
            try:
                return await asyncio.wait_for(receive(), timeout=self.idle_s)
            except TimeoutError:
                raise RequestTooSlowError(
                    f"the recording stopped arriving for {self.idle_s:.0f} s; check the Wi-Fi "
                    "and send it again"
                ) from None

        await self.app(scope, guarded_receive, send)


def run(app: Any, host: str, port: int, **uvicorn_options: Any) -> None:
    """Serve ``app`` with the guards above (``uvicorn_options``: TLS files, log level, …)."""
    import uvicorn

    s = get_settings()
    soft, _ = raise_open_files_limit()
    log.info("open-files limit %d", soft)
    uvicorn.run(
        BodyTimeout(app, s.body_idle_s),
        host=host,
        port=port,
        http=GuardedH11Protocol,
        timeout_keep_alive=s.keep_alive_s,
        limit_concurrency=s.max_connections,
        h11_max_incomplete_event_size=16 * 1024,
        timeout_graceful_shutdown=3,
        **uvicorn_options,
    )
