"""``/v1/retraining``: start a retraining job, follow it, cancel it."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from auscult import retrain
from auscult.errors import NotFoundError
from auscult.service import Service
from restapi.deps import get_service, require_key
from restapi.problems import PROBLEM_RESPONSES, problem_schema

__all__ = ["router"]

router = APIRouter(prefix="/v1/retraining", tags=["model"], dependencies=[Depends(require_key)])


class RetrainingOut(BaseModel):
    """The latest retraining run: where it is, and once done what it decided."""

    state: str = Field(description="running | done | failed | cancelled")
    stage: str
    progress: float = Field(description="0–1")
    started_at: str
    pid: int
    message: str = Field(description="the decision, or why it failed")
    report: dict[str, Any] | None = Field(
        description="before/after figures on the fixed set and the clinic's held-out "
        "recordings, the candidate, whether it was promoted"
    )


def _out(status: retrain.Status) -> RetrainingOut:
    return RetrainingOut(**dataclasses.asdict(status))


@router.post(
    "",
    status_code=202,
    response_model=RetrainingOut,
    responses={503: problem_schema("a retraining is running already"), **PROBLEM_RESPONSES},
    summary="Start a retraining",
)
async def start(service: Annotated[Service, Depends(get_service)]) -> RetrainingOut:
    """Fine-tune the serving model on PhysioNet plus the clinic's labelled recordings in a
    background process; follow it with GET. It promotes the result only by the rule."""
    await run_in_threadpool(retrain.start_job, service.settings)
    return _out(retrain.read_status(service.settings))


@router.get(
    "",
    response_model=RetrainingOut,
    responses={404: problem_schema("no retraining has run yet"), **PROBLEM_RESPONSES},
    summary="The latest run",
)
def status(service: Annotated[Service, Depends(get_service)]) -> RetrainingOut:
    found = retrain.read_status(service.settings)
    if found is None:
        raise NotFoundError("no retraining has run yet")
    return _out(found)


@router.delete(
    "",
    status_code=202,
    responses={404: problem_schema("no retraining is running"), **PROBLEM_RESPONSES},
    summary="Cancel the running one",
)
def cancel(service: Annotated[Service, Depends(get_service)]) -> Response:
    """Stop the running job after its current epoch; nothing it made is registered."""
    if not retrain.cancel_job(service.settings):
        raise NotFoundError("no retraining is running")
    return Response(status_code=202)
