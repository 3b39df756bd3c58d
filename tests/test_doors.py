"""Every door gives the same answer for the same file: the desktop's service call, the phone
page (through the worker), the REST API and the batch CLI; and the API holds to its schema."""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import positive_data_acceptance

import api
import mobile_recorder
from auscult.analyzer import Analyzer
from auscult.service import Service
from config import PROJECT_ROOT, Settings


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


def test_app_phone_api_and_cli_agree(settings, analyzer, tmp_path, wav_bytes, murmur_8k):
    data = wav_bytes(murmur_8k[: 8000 * 12], 8000)
    service = Service(settings, analyzer=analyzer)

    desktop = service.analyse_upload(data, "same.wav").result

    phone_app = mobile_recorder.create_app(settings, token="t0ken", store=service.store)
    with TestClient(phone_app) as phone:
        r = phone.post("/api/recordings", content=data, headers={"X-Auscult-Token": "t0ken"})
    assert r.status_code == 201
    assert service.process_pending() == [r.json()["id"]]  # what the worker does
    from_phone = service.get(r.json()["id"]).result

    with TestClient(api.create_app(settings, service)) as client:
        from_api = client.post("/v1/analyses", content=data).json()["result"]

    path = tmp_path / "same.wav"
    path.write_bytes(data)
    out = tmp_path / "out.csv"
    proc = subprocess.run(
        [sys.executable, "scripts/batch_predict.py", str(path), "--output", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    with open(out, newline="") as f:
        (cli,) = list(csv.DictReader(f))

    answers = [
        (desktop.label, round(desktop.probability, 4)),
        (from_phone["label"], round(from_phone["probability"], 4)),
        (from_api["label"], round(from_api["probability"], 4)),
        (cli["label"], float(cli["probability"])),
    ]
    assert len(set(answers)) == 1, answers


# --------------------------------------------------------------------------------------
# contract: no 500, every answer matches the OpenAPI schema
# --------------------------------------------------------------------------------------
_WORK = Path(tempfile.mkdtemp(prefix="auscult-contract-"))
_CONTRACT_APP = api.create_app(Settings(work_dir=_WORK))
schema = schemathesis.openapi.from_asgi("/openapi.json", _CONTRACT_APP)


@schema.parametrize()
@hypothesis_settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_holds_to_its_schema(case):
    # Every check but "schema-valid data is accepted": a schema cannot say "must be a heart
    # sound", so random bytes that fit it are rightly refused (415/422 problems).
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
