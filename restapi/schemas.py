"""Pydantic schemas of the REST API: what goes over the wire, documented in ``/docs``."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field

from auscult.analyzer import AnalysisResult
from auscult.exams import Exam
from auscult.reading import DISCLAIMER, reading
from auscult.store import Entry

__all__ = [
    "AnalysisOut",
    "ExamOut",
    "ExamSiteOut",
    "HealthOut",
    "HistoryOut",
    "ModelOut",
    "Problem",
    "ReadingOut",
    "ResultOut",
    "analysis_out",
    "exam_out",
]


class Problem(BaseModel):
    """An error (RFC 9457 ``application/problem+json``); ``detail`` is for a clinician."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str


class ResultOut(BaseModel):
    """The analyzer's answer for one recording."""

    label: Literal["normal", "abnormal", "unsure"]
    probability: float = Field(description="calibrated probability of an abnormal heart sound")
    threshold: float
    reliable: bool = Field(description="false when the recording is too poor to judge")
    borderline: bool = Field(description="true when the probability is too close to call")
    band: tuple[float, float] = Field(description="the borderline band around the threshold")
    reason: str
    quality: float = Field(description="recording quality 0–1")
    quality_problem: str
    heart_rate_bpm: float | None
    duration_s: float
    sample_rate: int
    channels: int
    window_probabilities: list[float]
    window_starts_s: list[float]
    window_s: float
    padded: bool
    warnings: list[str]
    model_version: str
    s1_times_s: list[float] = Field(description="centre of every S1 found, seconds")
    s2_times_s: list[float] = Field(description="centre of every S2 found, seconds")
    systole_ms: float | None = Field(description="median S1 centre → S2 centre")
    diastole_ms: float | None = Field(description="median S2 centre → next S1 centre")
    murmur_phase: Literal["", "systolic", "diastolic", "both"] = Field(
        description="which gap holds more sound than in nine of ten normal hearts ('' none)"
    )


class ReadingOut(BaseModel):
    """The plain-language reading shown under the result."""

    headline: str
    subtitle: str
    summary: str
    next_step: str
    tips: list[str]


class AnalysisOut(BaseModel):
    """One analysis in the history; ``result`` is null until it has been analysed."""

    id: int
    status: Literal["pending", "analysing", "done", "error"]
    created_at: str
    analysed_at: str | None
    source: str
    site: str | None
    patient_id: str | None
    note: str | None
    filename: str
    error: str | None = Field(description="why the analysis failed, when it did")
    elapsed_ms: float | None
    result: ResultOut | None
    reading: ReadingOut | None
    audio_url: str | None
    disclaimer: str = DISCLAIMER


class ExamSiteOut(BaseModel):
    """The newest recording of one site in an exam."""

    site: str
    analysis: AnalysisOut


class ExamOut(BaseModel):
    """The recordings of one patient/exam id on one day."""

    key: str = Field(description="<patient id>@<YYYY-MM-DD>; names the exam in the API")
    patient_id: str
    day: str
    verdict: Literal["abnormal", "unsure", "waiting", "failed", "normal"]
    summary: str
    missing_sites: list[str]
    sites: list[ExamSiteOut]
    recordings: int
    report_url: str


def exam_out(exam: Exam) -> ExamOut:
    return ExamOut(
        key=exam.key,
        patient_id=exam.patient_id,
        day=exam.day,
        verdict=exam.verdict,  # type: ignore[arg-type]
        summary=exam.summary(),
        missing_sites=list(exam.missing_sites),
        sites=[ExamSiteOut(site=s, analysis=analysis_out(e)) for s, e in exam.by_site.items()],
        recordings=len(exam.entries),
        report_url=f"/v1/exams/{quote(exam.key, safe='@')}/report.pdf",
    )


class HistoryOut(BaseModel):
    """A page of history, newest first."""

    items: list[AnalysisOut]
    total: int
    limit: int
    offset: int


class HealthOut(BaseModel):
    status: Literal["ok"]
    ready: bool = Field(description="the model is loaded and analyses can run")
    model_version: str | None
    uptime_s: float
    queue_depth: int = Field(description="recordings waiting for the worker")


class ModelOut(BaseModel):
    """The model card (``models/metadata.json``)."""

    version: str
    task: str
    threshold: float
    threshold_rule: str
    borderline: dict[str, Any]
    calibration: dict[str, Any]
    preprocessing: dict[str, Any]
    metrics: dict[str, Any]
    training: dict[str, Any]
    files: dict[str, Any]
    intended_use: str = (
        "Decision support for trained clinicians, not a diagnosis. Trained on PhysioNet/CinC "
        "2016 stethoscope recordings of adults; phone recordings are outside the training "
        "data; not validated for children or neonates."
    )


def analysis_out(entry: Entry) -> AnalysisOut:
    """The wire form of a history row."""
    result = (
        AnalysisResult.from_dict(entry.result) if entry.status == "done" and entry.result else None
    )
    read = reading(result) if result is not None else None
    return AnalysisOut(
        id=entry.id,
        status=entry.status,  # type: ignore[arg-type]
        created_at=entry.created_at,
        analysed_at=entry.analysed_at,
        source=entry.source,
        site=entry.site,
        patient_id=entry.patient_id,
        note=entry.note,
        filename=entry.filename,
        error=entry.error,
        elapsed_ms=entry.elapsed_ms,
        result=ResultOut(**result.to_dict()) if result is not None else None,
        reading=ReadingOut(
            **{k: v for k, v in dataclasses.asdict(read).items() if k in ReadingOut.model_fields}
        )
        if read is not None
        else None,
        audio_url=f"/v1/analyses/{entry.id}/audio" if entry.audio_path else None,
    )
