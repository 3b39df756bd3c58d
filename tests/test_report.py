"""The PDF report: one A4 page whose text says what the app says, from service, API and CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

import api
from auscult.analyzer import Analyzer
from auscult.service import Service
from config import PROJECT_ROOT

needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext, pdftoppm) not installed"
)


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


def pdf_text(pdf: bytes, tmp_path) -> str:
    path = tmp_path / "r.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


@needs_poppler
def test_the_report_is_one_page_saying_what_the_app_says(
    settings, analyzer, wav_bytes, heart_8k, tmp_path
):
    svc = Service(settings, analyzer=analyzer)
    done = svc.analyse_upload(
        wav_bytes(heart_8k, 8000), "chest.wav", site="mitral", patient_id="P-17"
    )
    pdf = svc.report_pdf(done.entry.id)
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf, tmp_path)
    assert "Patient/exam: P-17" in text
    assert "site: mitral" in text
    assert done.result.label.capitalize() in text
    assert "Chance of abnormal:" in text
    assert f"Heart rate: {done.result.heart_rate_bpm:.0f} bpm" in text
    assert "Decision support, not a diagnosis" in text
    assert f"Model {done.result.model_version}" in text
    assert f"{len(done.result.s1_times_s)} heart cycles followed" in text
    assert "Why" in text
    assert "S1→S2 (systole)" in text
    pages = tmp_path / "page"
    subprocess.run(
        ["pdftoppm", "-r", "40", "-png", str(tmp_path / "r.pdf"), str(pages)], check=True
    )
    assert [p.name for p in tmp_path.glob("page*.png")] == ["page-1.png"]


@needs_poppler
def test_a_recording_too_poor_to_judge_is_reported_as_not_judged(
    settings, analyzer, wav_bytes, noise_8k, tmp_path
):
    svc = Service(settings, analyzer=analyzer)
    done = svc.analyse_upload(wav_bytes(noise_8k, 8000), "noise.wav")
    text = pdf_text(svc.report_pdf(done.entry.id), tmp_path)
    assert "Chance of abnormal: not judged" in text
    assert "Unsure" in text
    assert "No regular S1–S2 rhythm could be followed" in text
    assert "Why" not in text  # a score too poor to trust is not explained


def test_the_api_serves_the_report_and_404_for_no_result(settings, analyzer, wav_bytes, heart_8k):
    svc = Service(settings, analyzer=analyzer)
    with TestClient(api.create_app(settings, svc)) as client:
        entry_id = client.post("/v1/analyses", content=wav_bytes(heart_8k, 8000)).json()["id"]
        r = client.get(f"/v1/analyses/{entry_id}/report.pdf")
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/pdf"
        assert r.content.startswith(b"%PDF")
        queued = client.post("/v1/analyses?wait=false", content=wav_bytes(heart_8k, 8000)).json()
        r = client.get(f"/v1/analyses/{queued['id']}/report.pdf")
        assert r.status_code == 404
        assert "no result yet" in r.json()["detail"]


def test_the_cli_writes_a_report(tmp_path, wav_bytes, heart_8k):
    recording = tmp_path / "chest.wav"
    recording.write_bytes(wav_bytes(heart_8k, 8000))
    env = {"AUSCULT_WORK_DIR": str(tmp_path / "work")}
    proc = subprocess.run(
        [sys.executable, "scripts/report.py", str(recording), "--site", "aortic"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, **env},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "chest.report.pdf").read_bytes().startswith(b"%PDF")
