"""``/v1/analyses``: analyse a recording, many recordings, list, get, fetch audio, delete."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import AsyncIterator, Collection
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.datastructures import UploadFile

from auscult.errors import AuscultError, InvalidRequestError, UploadTooLargeError
from auscult.service import Service
from auscult.store import SITES
from restapi.deps import AnalysisSlots, get_service, get_slots, require_key
from restapi.problems import PROBLEM_RESPONSES, problem_schema
from restapi.schemas import AnalysisOut, HistoryOut, analysis_out
from serving import read_body

__all__ = ["router"]

router = APIRouter(prefix="/v1/analyses", tags=["analyses"], dependencies=[Depends(require_key)])

Site = Literal["aortic", "pulmonic", "tricuspid", "mitral"]
MAX_BATCH_FILES = 100
#: An ISO 8601 date, or date and time with an optional zone (``2026-11-30T14:00:00Z``).
ISO_TIME = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?)?$"

_FIELDS = {
    "site": {"type": "string", "enum": list(SITES)},
    "patient_id": {"type": "string", "maxLength": 100},
    "note": {"type": "string", "maxLength": 500},
}
_ONE_FILE_BODY = {
    "requestBody": {
        "required": True,
        "description": "The recording: a multipart form with `file` (and optional fields), "
        "or the encoded audio itself as the body (WAV, FLAC, MP3, OGG, WebM/Opus, M4A/AAC).",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}, **_FIELDS},
                    "required": ["file"],
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_MANY_FILES_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "maxItems": MAX_BATCH_FILES,
                        },
                        "site": _FIELDS["site"],
                    },
                    "required": ["files"],
                }
            }
        },
    }
}
_UPLOAD_ERRORS = {
    413: problem_schema("the recording is larger than the upload limit"),
    415: problem_schema("the body is not audio in any format Auscult reads"),
}


async def _file_bytes(upload: Any, limit: int) -> tuple[str, bytes]:
    if not isinstance(upload, UploadFile):
        raise InvalidRequestError("the form field must be a file, not text")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise UploadTooLargeError.of(len(data), limit)
    return upload.filename or "upload", data


def _is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith("multipart/form-data")


async def one_recording(
    request: Request, limit: int, allowed: Collection[str] = tuple(_FIELDS)
) -> tuple[str, bytes, dict[str, str]]:
    """(file name, bytes, form fields named in ``allowed``) from a multipart form or a raw
    body."""
    if not _is_form(request):
        name = request.query_params.get("filename") or "upload"
        return name, await read_body(request, limit), {}
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise UploadTooLargeError.of(int(declared), limit)
    form = await request.form(max_files=1, max_fields=10)
    if "file" not in form:
        raise InvalidRequestError("the form has no `file` field with the recording")
    name, data = await _file_bytes(form["file"], limit)
    fields = {k: v for k, v in form.items() if k in allowed and isinstance(v, str)}
    return name, data, fields


@router.post(
    "",
    status_code=201,
    response_model=AnalysisOut,
    openapi_extra=_ONE_FILE_BODY,
    responses={
        202: {"model": AnalysisOut, "description": "accepted; the worker analyses it (wait=false)"},
        **_UPLOAD_ERRORS,
        **PROBLEM_RESPONSES,
    },
    summary="Analyse one recording",
)
async def create_analysis(
    request: Request,
    service: Annotated[Service, Depends(get_service)],
    slots: Annotated[AnalysisSlots, Depends(get_slots)],
    site: Annotated[Site | None, Query()] = None,
    patient_id: Annotated[str | None, Query(max_length=100)] = None,
    note: Annotated[str | None, Query(max_length=500)] = None,
    wait: Annotated[
        bool, Query(description="false: store it and answer 202 at once; the worker analyses it")
    ] = True,
) -> Any:
    """Analyse a heart-sound recording and keep it in the history.

    With ``wait=false`` the recording is validated and queued (202); poll
    ``GET /v1/analyses/{id}`` until its status is ``done``.
    """
    declared = request.headers.get("content-length", "")
    with service.upload_slot(int(declared) if declared.isdigit() else None):
        name, data, fields = await one_recording(request, service.settings.max_upload_bytes)
        site = fields.get("site", site)  # type: ignore[assignment]
        patient_id = fields.get("patient_id", patient_id)
        note = fields.get("note", note)
        if not wait:
            delivery = await slots.run(
                service.receive, data, source="api", site=site,
                client_id=request.headers.get("X-Recording-Id") or None,
            )  # fmt: skip
            entry = service.get(delivery.entry_id)
            return JSONResponse(analysis_out(entry).model_dump(mode="json"), status_code=202)
        done = await slots.run(
            service.analyse_upload, data, name, source="api", site=site, patient_id=patient_id,
            note=note,
        )  # fmt: skip
    telemetry = request.app.state.telemetry
    telemetry.analyses.labels(done.result.label).inc()
    return analysis_out(done.entry)


@router.post(
    "/batch",
    openapi_extra=_MANY_FILES_BODY,
    responses={
        200: {
            "description": "one JSON object per line (NDJSON), in upload order, as each "
            "file finishes: `{index, filename, analysis}` or `{index, filename, error}`",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        },
        **_UPLOAD_ERRORS,
        **PROBLEM_RESPONSES,
    },
    summary="Analyse many recordings; results streamed as they finish",
)
async def create_batch(
    request: Request,
    service: Annotated[Service, Depends(get_service)],
    slots: Annotated[AnalysisSlots, Depends(get_slots)],
) -> StreamingResponse:
    limit = service.settings.max_upload_bytes
    if not _is_form(request):
        raise InvalidRequestError("send the recordings as a multipart form with `files` fields")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > 4 * limit:
        raise UploadTooLargeError.of(int(declared), 4 * limit)
    form = await request.form(max_files=MAX_BATCH_FILES, max_fields=10)
    uploads = form.getlist("files")
    if not uploads:
        raise InvalidRequestError("the form has no `files` fields with recordings")
    if not all(isinstance(u, UploadFile) for u in uploads):
        raise InvalidRequestError("every `files` field must be a file, not text")
    site = form.get("site") if isinstance(form.get("site"), str) else None
    if site is not None and site not in SITES:
        raise InvalidRequestError(f"unknown auscultation site {site!r}; choose one of {SITES}")
    telemetry = request.app.state.telemetry

    async def lines() -> AsyncIterator[bytes]:
        for i, upload in enumerate(uploads):
            name = getattr(upload, "filename", None) or f"file {i + 1}"
            try:
                name, data = await _file_bytes(upload, limit)
                done = await slots.run(service.analyse_upload, data, name, source="api", site=site)
                telemetry.analyses.labels(done.result.label).inc()
                item = {"analysis": analysis_out(done.entry).model_dump(mode="json")}
            except AuscultError as exc:
                telemetry.analyses.labels("failed").inc()
                item = {
                    "error": {"status": exc.http_status, "title": exc.title, "detail": str(exc)}
                }
            yield (json.dumps({"index": i, "filename": name, **item}) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.get("", response_model=HistoryOut, responses=PROBLEM_RESPONSES, summary="History")
def list_analyses(
    service: Annotated[Service, Depends(get_service)],
    label: Literal["normal", "abnormal", "unsure"] | None = None,
    status: Literal["pending", "analysing", "done", "error"] | None = None,
    source: Literal["upload", "phone", "batch", "demo", "api", "inbox"] | None = None,
    site: Site | None = None,
    patient_id: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[str | None, Query(pattern=ISO_TIME, description="created at or after")] = None,
    until: Annotated[str | None, Query(pattern=ISO_TIME, description="created before")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> HistoryOut:
    """Analyses, newest first, filtered; ``total`` counts every match."""
    page = service.history(
        label=label, status=status, source=source, site=site, patient_id=patient_id,
        since=_moment("since", since), until=_moment("until", until), limit=limit, offset=offset,
    )  # fmt: skip
    return HistoryOut(
        items=[analysis_out(e) for e in page.entries],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
    )


def _moment(name: str, text: str | None) -> datetime | None:
    """An ISO 8601 date or time from a query (UTC when it names no zone)."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequestError(
            f"{name}={text!r} is not a date or time; write e.g. 2026-11-30 or 2026-11-30T14:00Z"
        ) from None


_NOT_FOUND = {404: problem_schema("no such analysis"), **PROBLEM_RESPONSES}
EntryId = Annotated[int, Path(ge=1, le=2**62, description="the analysis id")]


@router.get("/{entry_id:int}", response_model=AnalysisOut, responses=_NOT_FOUND, summary="One")
def get_analysis(
    entry_id: EntryId, service: Annotated[Service, Depends(get_service)]
) -> AnalysisOut:
    return analysis_out(service.get(entry_id))


@router.get(
    "/{entry_id:int}/audio",
    response_class=FileResponse,
    responses={200: {"content": {"audio/*": {}}, "description": "the audio"}, **_NOT_FOUND},
    summary="The recording's audio",
)
def get_audio(entry_id: EntryId, service: Annotated[Service, Depends(get_service)]) -> FileResponse:
    path = service.audio(entry_id)
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, filename=path.name)


@router.get(
    "/{entry_id:int}/report.pdf",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}}, "description": "A4, one page"},
        **_NOT_FOUND,
    },
    summary="The PDF report",
)
def get_report(entry_id: EntryId, service: Annotated[Service, Depends(get_service)]) -> Response:
    """The one-page report: answer, chance, quality, heart rate, plots, model, disclaimer."""
    return Response(
        service.report_pdf(entry_id),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="auscult-{entry_id}.pdf"'},
    )


@router.delete("/{entry_id:int}", status_code=204, responses=_NOT_FOUND, summary="Delete one")
def delete_analysis(
    entry_id: EntryId, service: Annotated[Service, Depends(get_service)]
) -> Response:
    """Delete the analysis and the audio Auscult saved for it."""
    service.delete(entry_id)
    return Response(status_code=204)
