"""``/v1/training-data``: the clinic's labelled recordings for retraining, and label
confirmations of analysed recordings (``/v1/analyses/{id}/confirmation``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from auscult.clinic_data import LabelledRecording
from auscult.service import Service
from restapi.analyses import one_recording
from restapi.deps import get_service, require_key
from restapi.problems import PROBLEM_RESPONSES, problem_schema

__all__ = ["router"]

router = APIRouter(tags=["training data"], dependencies=[Depends(require_key)])

Label = Literal["normal", "abnormal"]
Site = Literal["aortic", "pulmonic", "tricuspid", "mitral"]
_FIELDS = ("label", "who", "site", "device", "evidence", "patient_id", "note")
_BODY = {
    "requestBody": {
        "required": True,
        "description": "The recording: a multipart form with `file` and the fields, or the "
        "encoded audio itself as the body with the fields as query parameters.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "label": {"type": "string", "enum": ["normal", "abnormal"]},
                        "who": {"type": "string", "maxLength": 100},
                        "site": {
                            "type": "string",
                            "enum": ["aortic", "pulmonic", "tricuspid", "mitral"],
                        },
                        "device": {"type": "string", "maxLength": 100},
                        "evidence": {"type": "string", "maxLength": 200},
                        "patient_id": {"type": "string", "maxLength": 100},
                        "note": {"type": "string", "maxLength": 500},
                    },
                    "required": ["file", "label", "who"],
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


class LabelledOut(BaseModel):
    """One labelled recording kept for retraining, with its provenance."""

    id: int
    created_at: str
    filename: str
    label: Label
    site: str | None
    device: str | None
    source: str
    who: str
    evidence: str | None
    patient_id: str | None
    analysis_id: int | None
    note: str | None
    duration_s: float | None
    sample_rate: int | None


class Confirmation(BaseModel):
    """The true label of an analysed recording, and on what it rests."""

    label: Label
    who: str = Field(min_length=1, max_length=100)
    evidence: str | None = Field(default=None, max_length=200, examples=["echocardiogram"])


def _out(item: LabelledRecording) -> LabelledOut:
    return LabelledOut(**{k: v for k, v in item.__dict__.items() if k in LabelledOut.model_fields})


@router.post(
    "/v1/training-data",
    status_code=201,
    response_model=LabelledOut,
    openapi_extra=_BODY,
    responses={
        413: problem_schema("the recording is larger than the upload limit"),
        415: problem_schema("the body is not audio in any format Auscult reads"),
        **PROBLEM_RESPONSES,
    },
    summary="Add a labelled recording",
)
async def add_labelled(
    request: Request,
    service: Annotated[Service, Depends(get_service)],
    label: Annotated[Label | None, Query()] = None,
    who: Annotated[str | None, Query(max_length=100)] = None,
    site: Annotated[Site | None, Query()] = None,
    device: Annotated[str | None, Query(max_length=100)] = None,
    evidence: Annotated[str | None, Query(max_length=200)] = None,
    patient_id: Annotated[str | None, Query(max_length=100)] = None,
    note: Annotated[str | None, Query(max_length=500)] = None,
) -> LabelledOut:
    """Keep a recording with its true label for retraining (never mixed into PhysioNet)."""
    declared = request.headers.get("content-length", "")
    with service.upload_slot(int(declared) if declared.isdigit() else None):
        name, data, form = await one_recording(request, service.settings.max_upload_bytes, _FIELDS)
        given: dict[str, Any] = {
            "label": label, "who": who, "site": site, "device": device, "evidence": evidence,
            "patient_id": patient_id, "note": note,
        } | form  # fmt: skip
        item = await run_in_threadpool(
            service.clinic.add, data, name, label=given["label"] or "", who=given["who"] or "",
            site=given["site"] or None, device=given["device"], evidence=given["evidence"],
            patient_id=given["patient_id"], note=given["note"], source="api",
        )  # fmt: skip
    return _out(item)


@router.get(
    "/v1/training-data",
    response_model=list[LabelledOut],
    responses=PROBLEM_RESPONSES,
    summary="List",
)
def list_labelled(
    service: Annotated[Service, Depends(get_service)],
    label: Annotated[Label | None, Query()] = None,
) -> list[LabelledOut]:
    """The clinic's labelled recordings, newest first."""
    return [_out(i) for i in service.clinic.items(label)]


@router.delete(
    "/v1/training-data/{item_id:int}",
    status_code=204,
    responses={404: problem_schema("no such labelled recording"), **PROBLEM_RESPONSES},
    summary="Delete one",
)
def delete_labelled(
    item_id: Annotated[int, Path(ge=1, le=2**62)],
    service: Annotated[Service, Depends(get_service)],
) -> Response:
    service.clinic.delete(item_id)
    return Response(status_code=204)


@router.post(
    "/v1/analyses/{entry_id:int}/confirmation",
    status_code=201,
    response_model=LabelledOut,
    responses={
        404: problem_schema("no such analysis, or its audio is gone"),
        **PROBLEM_RESPONSES,
    },
    summary="Confirm or correct an analysis' label",
)
def confirm(
    entry_id: Annotated[int, Path(ge=1, le=2**62)],
    body: Confirmation,
    service: Annotated[Service, Depends(get_service)],
) -> LabelledOut:
    """Keep the analysed recording with its true label (e.g. echo-confirmed) for retraining."""
    return _out(service.confirm_label(entry_id, body.label, who=body.who, evidence=body.evidence))
