"""``/v1/exams``: the recordings of one patient/exam id on one day, and the exam's PDF."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from auscult.service import Service
from restapi.deps import get_service, require_key
from restapi.problems import PROBLEM_RESPONSES, problem_schema
from restapi.schemas import ExamOut, exam_out

__all__ = ["router"]

router = APIRouter(prefix="/v1/exams", tags=["exams"], dependencies=[Depends(require_key)])

_NOT_FOUND = {404: problem_schema("no such exam"), **PROBLEM_RESPONSES}
ExamKey = Annotated[
    str,
    Path(
        min_length=1,
        max_length=111,
        description="`<patient id>@<YYYY-MM-DD>` (the id alone: its newest exam)",
    ),
]


@router.get("", response_model=list[ExamOut], responses=PROBLEM_RESPONSES, summary="List")
def list_exams(
    service: Annotated[Service, Depends(get_service)],
    patient_id: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[ExamOut]:
    """Exams newest first; with `patient_id`, that id's exams over time (to compare)."""
    return [exam_out(e) for e in service.exams(patient_id, limit)]


@router.get("/{key}", response_model=ExamOut, responses=_NOT_FOUND, summary="One")
def get_exam(key: ExamKey, service: Annotated[Service, Depends(get_service)]) -> ExamOut:
    """Each site's newest recording, the exam's verdict and its one-line summary."""
    return exam_out(service.exam(key))


@router.get(
    "/{key}/report.pdf",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}}, "description": "summary page + one per site"},
        **_NOT_FOUND,
    },
    summary="The exam's PDF report",
)
def get_exam_report(key: ExamKey, service: Annotated[Service, Depends(get_service)]) -> Response:
    """A summary page (every site's verdict), then the page of each site's recording."""
    exam = service.exam(key)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in exam.key)
    return Response(
        service.exam_report_pdf(exam.key),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="auscult-exam-{safe}.pdf"'},
    )
