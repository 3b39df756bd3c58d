"""``/v1/ecg/analyses``: ECG files in (WFDB, EDF, CSV, Apple Health export), beats and
rhythm out, kept in history as modality ``ecg``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.datastructures import UploadFile

from auscult.errors import InvalidRequestError, UploadTooLargeError
from auscult.service import Service
from restapi.deps import AnalysisSlots, get_service, get_slots, require_key
from restapi.problems import PROBLEM_RESPONSES, problem_schema
from serving import read_body

__all__ = ["router"]

router = APIRouter(prefix="/v1/ecg/analyses", tags=["ECG"], dependencies=[Depends(require_key)])

EntryId = Annotated[int, Path(ge=1, le=2**62, description="ECG analysis id")]
_NOT_FOUND = {404: problem_schema("no such ECG analysis"), **PROBLEM_RESPONSES}
_BODY = {
    "requestBody": {
        "required": True,
        "description": "One record: a multipart form with one or more `file` parts (a WFDB "
        "`.hea` with its `.dat`/`.mat`, a zip of them, an EDF, a CSV or an Apple Health "
        "`ecg_*.csv`), or one file as the body with `filename` as a query parameter.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "lead": {"type": "string"},
                        "rate_hz": {"type": "number"},
                        "patient_id": {"type": "string", "maxLength": 100},
                    },
                    "required": ["file"],
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


async def _files(request: Request, limit: int) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """The uploaded files and text fields (multipart), or one raw body."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        name = request.query_params.get("filename") or "upload.csv"
        return [(name, await read_body(request, limit))], {}
    form = await request.form(max_files=8, max_fields=10)
    files, total = [], 0
    for upload in form.getlist("file"):
        if not isinstance(upload, UploadFile):
            raise InvalidRequestError("the `file` fields must be files, not text")
        data = await upload.read(limit + 1)
        total += len(data)
        if total > limit:
            raise UploadTooLargeError.of(total, limit)
        files.append((upload.filename or "upload", data))
    if not files:
        raise InvalidRequestError("the form has no `file` field with the ECG")
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    return files, fields


def _rate(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError as exc:
        raise InvalidRequestError(f"rate_hz must be a number of hertz, not {text!r}") from exc


@router.post(
    "",
    status_code=201,
    openapi_extra=_BODY,
    responses={
        413: problem_schema("the files are larger than the upload limit"),
        **PROBLEM_RESPONSES,
    },
    summary="Analyse one ECG record",
)
async def create_ecg_analysis(
    request: Request,
    service: Annotated[Service, Depends(get_service)],
    slots: Annotated[AnalysisSlots, Depends(get_slots)],
    lead: Annotated[str | None, Query(max_length=40)] = None,
    rate_hz: Annotated[float | None, Query(gt=0)] = None,
    patient_id: Annotated[str | None, Query(max_length=100)] = None,
    beats: Annotated[bool, Query(description="include every beat in the answer")] = True,
) -> dict[str, Any]:
    """Find and classify every beat (AAMI N/S/V/F/Q), read the rhythm (rate, AF episodes,
    ectopic burdens, pauses, pacing) and keep the analysis; unreadable stretches are listed
    as unsure."""
    declared = request.headers.get("content-length", "")
    limit = service.settings.ecg_max_upload_bytes
    with service.upload_slot(min(int(declared), limit) if declared.isdigit() else None):
        files, fields = await _files(request, limit)
        entry, analysis, _ = await slots.run(
            service.analyse_ecg, files, source="api",
            patient_id=fields.get("patient_id", patient_id), lead=fields.get("lead", lead),
            rate_hz=_rate(fields.get("rate_hz")) or rate_hz,
        )  # fmt: skip
    return {"id": entry.id, "created_at": entry.created_at, **analysis.to_dict(beats=beats)}


@router.get("", responses=PROBLEM_RESPONSES, summary="ECG analyses, newest first")
def list_ecg_analyses(
    service: Annotated[Service, Depends(get_service)],
    patient_id: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    return [e.summary() for e in service.ecg_history.entries(limit, patient_id)]


@router.get("/{entry_id:int}", responses=_NOT_FOUND, summary="One ECG analysis")
def get_ecg_analysis(
    entry_id: EntryId,
    service: Annotated[Service, Depends(get_service)],
    beats: Annotated[bool, Query()] = True,
) -> dict[str, Any]:
    entry, analysis = service.ecg_entry(entry_id)
    return {"id": entry.id, "created_at": entry.created_at, **analysis.to_dict(beats=beats)}


@router.get(
    "/{entry_id:int}/report.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, **_NOT_FOUND},
    summary="The ECG PDF report",
)
def get_ecg_report(
    entry_id: EntryId, service: Annotated[Service, Depends(get_service)]
) -> Response:
    return Response(
        service.ecg_report_pdf(entry_id),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="auscult-ecg-{entry_id}.pdf"'},
    )


@router.delete("/{entry_id:int}", status_code=204, responses=_NOT_FOUND, summary="Delete one")
def delete_ecg_analysis(
    entry_id: EntryId, service: Annotated[Service, Depends(get_service)]
) -> Response:
    service.ecg_history.delete(entry_id)
    return Response(status_code=204)
