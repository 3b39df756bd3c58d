"""Exams: four sites of one patient/exam id on one day, read together, reported together."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from fastapi.testclient import TestClient

import api
from auscult.analyzer import Analyzer
from auscult.exams import group_exams
from auscult.service import Service
from auscult.store import Entry


def entry(i: int, site: str | None, label: str, *, pid="P-1", at="2026-11-30T09:00:00+00:00",
          status="done", probability=0.2, borderline=False) -> Entry:  # fmt: skip
    return Entry(
        id=i, created_at=at, source="phone", site=site, filename=f"{i}.wav", audio_path=None,
        status=status, label=label if status == "done" else None, probability=probability,
        duration_s=20.0, result={"borderline": borderline}, error=None, analysed_at=None,
        patient_id=pid,
    )  # fmt: skip


def test_recordings_group_by_id_and_day_newest_first():
    exams = group_exams([
        entry(1, "mitral", "normal", at="2026-11-01T09:00:00+00:00"),
        entry(2, "mitral", "normal"),
        entry(3, "aortic", "abnormal", probability=0.81),
        entry(4, "mitral", "normal", pid="P-2"),
        entry(5, None, "normal", pid=None),
    ])  # fmt: skip
    assert [(e.patient_id, len(e.entries)) for e in exams] == [("P-2", 1), ("P-1", 2), ("P-1", 1)]
    today = exams[1]
    assert today.key.startswith("P-1@2026-11-")
    assert list(today.by_site) == ["aortic", "mitral"]  # in the order of the sites
    assert today.verdict == "abnormal"
    assert today.missing_sites == ("pulmonic", "tricuspid")
    summary = today.summary()
    assert "aortic abnormal (81%)" in summary
    assert "not yet recorded: pulmonic, tricuspid" in summary
    assert summary.endswith("Exam: needs review.")


def test_the_newest_recording_of_a_site_stands_for_it():
    exam = group_exams([
        entry(1, "mitral", "unsure"),
        entry(2, "mitral", "normal"),
        entry(3, "aortic", "unsure", borderline=True),
        entry(4, "pulmonic", "normal"),
        entry(5, "tricuspid", "normal", status="pending"),
    ])[0]  # fmt: skip
    assert exam.by_site["mitral"].id == 2
    assert exam.verdict == "unsure"
    assert "aortic unsure (borderline)" in exam.summary()
    assert "tricuspid waiting" in exam.summary()
    assert exam.summary().endswith("record the unsure sites again.")


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


def test_an_exam_of_four_phone_sites_is_served_and_reported(
    settings, analyzer, wav_bytes, heart_8k, murmur_8k, tmp_path
):
    svc = Service(settings, analyzer=analyzer)
    for site, sound in (("aortic", murmur_8k), ("pulmonic", heart_8k), ("tricuspid", heart_8k),
                        ("mitral", heart_8k)):  # fmt: skip
        svc.receive(wav_bytes(sound, 8000), site=site, patient_id="P-17")
    svc.receive(wav_bytes(heart_8k, 8000), site="mitral", patient_id="P-99")
    svc.process_pending()
    with TestClient(api.create_app(settings, svc)) as client:
        exams = client.get("/v1/exams", params={"patient_id": "P-17"}).json()
        assert len(exams) == 1
        exam = exams[0]
        assert [s["site"] for s in exam["sites"]] == ["aortic", "pulmonic", "tricuspid", "mitral"]
        assert exam["missing_sites"] == []
        labels = {s["analysis"]["result"]["label"] for s in exam["sites"]}
        pressing = next(v for v in ("abnormal", "unsure", "normal") if v in labels)
        assert exam["verdict"] == pressing
        assert client.get(f"/v1/exams/{exam['key']}").json()["key"] == exam["key"]
        assert client.get("/v1/exams/P-17").json()["key"] == exam["key"]  # newest exam
        assert client.get("/v1/exams/nobody").status_code == 404
        pdf = client.get(exam["report_url"])
        assert pdf.status_code == 200
        assert pdf.content.startswith(b"%PDF")
    if shutil.which("pdftotext"):
        path = tmp_path / "exam.pdf"
        path.write_bytes(pdf.content)
        text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                              text=True, check=True).stdout  # fmt: skip
        pages = text.split("\f")
        assert "heart sound exam" in pages[0]
        assert "Patient/exam: P-17" in pages[0]
        assert sum("heart sound report" in p for p in pages) == 4  # one page per site
