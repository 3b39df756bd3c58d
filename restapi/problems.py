"""Every error as ``application/problem+json`` with a human message; no stack trace leaves."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from auscult.errors import AuscultError, BusyError

__all__ = ["PROBLEM_RESPONSES", "install", "problem", "problem_schema"]

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"


def problem(status: int, title: str, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def problem_schema(description: str) -> dict:
    return {
        "description": description,
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


#: Error answers every route may give, for the OpenAPI schema.
PROBLEM_RESPONSES: dict[int | str, dict] = {
    400: problem_schema("malformed request (a broken multipart form, too many files)"),
    403: problem_schema("missing or wrong API key"),
    422: problem_schema("the request or the recording cannot be used"),
    503: problem_schema("busy or no model; retry after the Retry-After seconds"),
}


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is not valid"


def _allowed_methods(request: Request) -> list[str]:
    """The methods the routes of this path answer (HEAD is implied by GET)."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods - {"HEAD"})


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into problem responses."""

    @app.exception_handler(AuscultError)
    async def auscult_error(_request: Request, exc: AuscultError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, BusyError) else None
        return problem(exc.http_status, exc.title, str(exc), headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, "The request is not valid", _validation_detail(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # every method of the path, not only the first route's
            headers["Allow"] = ", ".join(_allowed_methods(request))
            detail = f"{request.method} is not allowed here; use {headers['Allow']}"
        return problem(exc.status_code, "Method Not Allowed" if exc.status_code == 405 else detail,
                       detail, headers or None)  # fmt: skip

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(
            500,
            "Internal error",
            "Auscult hit an unexpected error; nothing was lost. Try again, and if it "
            "persists send the server log to the maintainers.",
        )
