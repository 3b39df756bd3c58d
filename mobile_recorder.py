"""The phone recording page: one light HTML page and an upload endpoint, served over HTTPS.

Run by the launcher (``python launcher.py``), or on its own::

    AUSCULT_PAIRING_TOKEN=... python mobile_recorder.py --certfile data/tls/cert.pem \\
        --keyfile data/tls/key.pem

The page (``static/recorder.html``) records PCM with the browser's echo cancellation, noise
suppression and gain control switched off, encodes a 16-bit WAV and POSTs it with ``fetch`` —
no websocket, so it works on iOS Safari with a self-signed certificate and through a tunnel.

Endpoints
---------
``GET /``                 the recording page (pairs with ``?t=<token>`` in the address)
``GET /healthz``          ``{"status": "ok"}`` for the launcher, no token needed
``GET /api/session``      200 when the pairing code is right and current, 403 otherwise
``GET /api/recordings/{id}``  what the desktop made of a recording this phone sent: status,
                          and once analysed the label, quality and what to do (token needed)
``POST /api/recordings``  raw audio body, token in ``X-Auscult-Token`` (or ``?t=``),
                          ``?site=mitral&exam=P-17`` (the exam the desktop has open, carried
                          by the QR code); 201 once stored in the inbox with a pending row,
                          403 wrong token, 413 too large, 415 not audio, 422 unusable audio

Only this page listens on the LAN (``recorder_host``); the analyzer stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.middleware.gzip import GZipMiddleware

import serving
from auscult.errors import (
    AuscultError,
    BusyError,
    InvalidRequestError,
    NotPairedError,
)
from auscult.pairing import Pairings
from auscult.service import Service
from auscult.store import SITES, Store
from config import PROJECT_ROOT, Settings, get_settings

__all__ = ["STATIC_FILES", "TOKEN_ENV", "TOKEN_HEADER", "URL_ENV", "create_app", "main"]

log = logging.getLogger(__name__)

#: Environment variables the launcher uses to hand over the pairing token and public URL.
TOKEN_ENV = "AUSCULT_PAIRING_TOKEN"
URL_ENV = "AUSCULT_RECORDER_URL"
TOKEN_HEADER = "X-Auscult-Token"
#: The phone's own id for a recording: a retry of a stored recording returns 200 and the
#: first entry instead of storing it twice.
RECORDING_ID_HEADER = "X-Recording-Id"

STATIC_DIR = PROJECT_ROOT / "static"
#: The only files the page server hands out, with their media types.
STATIC_FILES = {
    "recorder.css": "text/css; charset=utf-8",
    "recorder.js": "text/javascript; charset=utf-8",
    "recorder-worklet.js": "text/javascript; charset=utf-8",
}

_SECURITY_HEADERS = {
    # Everything comes from this origin; no inline script, no third party.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    # The pairing token is in the page address: never send it anywhere in a Referer.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
}


class SecurityHeaders:
    """ASGI middleware adding ``_SECURITY_HEADERS`` to every answer.

    Plain ASGI rather than ``@app.middleware``: errors raised while the body is read (a
    stalled upload) reach the app's handlers as themselves, not wrapped in a task group.
    """

    _RAW = tuple((k.lower().encode(), v.encode()) for k, v in _SECURITY_HEADERS.items())

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self._RAW]
            await send(message)

        await self.app(scope, receive, with_headers)


def phone_answer(entry) -> dict:
    """What the phone shows about a recording it sent: short, plain, never a bare number."""
    if entry.status in ("pending", "analysing", "receiving"):
        return {"status": "analysing"}
    if entry.status == "error":
        return {"status": "failed", "say": entry.error or "the desktop could not analyse it"}
    result = entry.result or {}
    label = result.get("label", "")
    quality = "good" if (result.get("quality") or 0) >= 0.6 else "fair"
    if label == "unsure" and not result.get("borderline"):
        say = "Too poor to judge — record again, pressing firmly in a quiet room."
        quality = "poor"
    elif label == "unsure":
        say = "Borderline — record again at another site; see the desktop."
    elif label == "abnormal":
        say = "Abnormal heart sound — needs review; see the desktop."
    else:
        say = "No abnormal pattern found; see the desktop for details."
    return {"status": "done", "label": label, "quality": quality, "say": say}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"stored": False, "error": message}, status_code=status)


def _check_token(request: Request, pairing: Callable[[str], bool]) -> None:
    """Raise NotPairedError unless the request carries a valid pairing code."""
    given = request.headers.get(TOKEN_HEADER) or request.query_params.get("t") or ""
    if not pairing(given):
        raise NotPairedError(
            "this phone is not paired with the desktop (the pairing code is wrong, expired or "
            "replaced by a new one); scan the QR code on the desktop again"
        )


def _static_token(token: str) -> Callable[[str], bool]:
    # Constant-time comparison: the time taken says nothing about how much of it matched.
    return lambda given: hmac.compare_digest(given.encode(), token.encode())


async def _drain(request: Request, limit: int) -> None:
    """Read and drop the body before refusing: a server that answers and closes while the
    client is still sending makes browsers report a network error instead of the answer."""
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            break


def create_app(
    settings: Settings | None = None,
    token: str | None = None,
    store: Store | None = None,
    service: Service | None = None,
) -> FastAPI:
    """The recording page app. With ``token``, that one fixed pairing code (tests,
    containers); without, the renewable, expiring code in ``<work_dir>/pairing.json``."""
    s = settings or get_settings()
    pairing = _static_token(token) if token else Pairings(s).check
    app = FastAPI(title="Auscult recorder", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(GZipMiddleware, minimum_size=800)
    app.state.settings = s
    # The service on the shared history store; this page never loads the model.
    app.state.service = service or Service(s, store or Store(s.db_path))

    def get_service() -> Service:
        return app.state.service

    @app.exception_handler(AuscultError)
    async def refused(_request: Request, exc: AuscultError) -> JSONResponse:
        # The page's script reads {"stored": false, "error": ...}; the status says why.
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, BusyError) else None
        response = _error(exc.http_status, str(exc))
        response.headers.update(headers or {})
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(
            500,
            "the desktop hit an unexpected error and did not store the recording; it is kept "
            "on the phone — send it again, and if this repeats restart Auscult",
        )

    app.add_middleware(SecurityHeaders)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": "auscult-recorder"}

    @app.get("/")
    async def page() -> Response:
        # The page itself is public and static; it pairs by reading ?t= from its address.
        return FileResponse(
            STATIC_DIR / "recorder.html",
            media_type="text/html; charset=utf-8",
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/static/{name}")
    async def static(name: str) -> Response:
        media_type = STATIC_FILES.get(name)
        if media_type is None:
            return _error(404, "not found")
        return FileResponse(
            STATIC_DIR / name, media_type=media_type, headers={"Cache-Control": "no-cache"}
        )

    @app.get("/api/session")
    async def session(request: Request) -> JSONResponse:
        try:
            _check_token(request, pairing)
        except NotPairedError:
            return _error(403, "this page is not paired with the desktop; scan the QR code again")
        return JSONResponse(
            {
                "paired": True,
                "sites": list(SITES),
                "max_upload_bytes": s.max_upload_bytes,
                "min_seconds": s.min_duration_s,
            }
        )

    @app.get("/api/recordings/{entry_id:int}")
    async def answer(entry_id: int, request: Request) -> JSONResponse:
        _check_token(request, pairing)
        entry = get_service().store.get(entry_id)
        if entry is None or entry.source != "phone":
            return _error(404, "this recording is not on the desktop (it may have been deleted)")
        return JSONResponse(phone_answer(entry))

    @app.post("/api/recordings")
    async def upload(request: Request) -> JSONResponse:
        site = request.query_params.get("site") or None
        exam = request.query_params.get("exam") or None
        try:
            _check_token(request, pairing)
            if site is not None and site not in SITES:
                raise InvalidRequestError(
                    f"unknown auscultation site {site!r}; choose one of {', '.join(SITES)}"
                )
        except AuscultError:
            log.warning("refused an upload from %s", request.client)
            await _drain(request, s.max_upload_bytes)
            raise
        service = get_service()
        declared = request.headers.get("content-length", "")
        with service.upload_slot(int(declared) if declared.isdigit() else None):
            data = await serving.read_body(request, s.max_upload_bytes)
            delivery = await run_in_threadpool(
                service.receive,
                data,
                source="phone",
                site=site,
                client_id=request.headers.get(RECORDING_ID_HEADER) or None,
                patient_id=exam,
            )
            del data
        return JSONResponse(
            {
                "stored": True,
                "id": delivery.entry_id,
                "filename": delivery.filename,
                "duration_s": round(delivery.duration_s, 3),
                "sample_rate": delivery.sample_rate,
                "site": delivery.site,
                "warnings": list(delivery.warnings),
            },
            status_code=200 if delivery.duplicate else 201,
        )

    return app


def _parse_args(argv: list[str] | None, s: Settings) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default=s.recorder_host, help="address to listen on (LAN: 0.0.0.0)")
    p.add_argument("--port", type=int, default=s.recorder_port)
    p.add_argument("--certfile", type=Path, help="TLS certificate (PEM); without it, plain HTTP")
    p.add_argument("--keyfile", type=Path, help="TLS private key (PEM)")
    p.add_argument(
        "--self-signed",
        action="store_true",
        help="make (or reuse) a certificate for AUSCULT_LAN_IP under <work_dir>/tls, as the "
        "launcher does (containers)",
    )
    p.add_argument(
        "--token",
        default=s.pairing_token,
        help=f"a fixed pairing token that never expires (default: ${TOKEN_ENV}); without it, "
        "the renewable code in <work_dir>/pairing.json",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    s = get_settings()
    args = _parse_args(argv, s)
    if args.self_signed and not args.certfile:
        from auscult.tls import ensure_certificate

        cert = ensure_certificate(s.work_dir / "tls", s.lan_ip or None)
        args.certfile, args.keyfile = cert.cert_path, cert.key_path
    scheme = "https" if args.certfile else "http"
    if not args.certfile:
        log.warning(
            "no --certfile: serving plain HTTP; phones only allow the microphone over HTTPS "
            "(use `python launcher.py`, which makes a certificate)"
        )
    if not args.token:  # the renewable code the launcher or the desktop made, or a new one
        pairings = Pairings(s)
        code = pairings.current()
        if code is None or not code.valid():
            code = pairings.new_code()
        log.info("pairing address: %s://<this computer>:%d/?t=%s", scheme, args.port, code.token)
    app = create_app(s, args.token or None)
    serving.run(
        app,
        args.host,
        args.port,
        ssl_certfile=str(args.certfile) if args.certfile else None,
        ssl_keyfile=str(args.keyfile) if args.keyfile else None,
        access_log=False,  # page addresses carry the pairing token
        log_level="info",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
