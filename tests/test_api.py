"""The REST API: every route, bad input as problem+json, the key, busy answers, metrics, and
the same answer as the other doors for the same file."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import pytest
from fastapi.testclient import TestClient

import api
from auscult.analyzer import Analyzer
from auscult.errors import BusyError
from auscult.service import Service
from restapi.deps import AnalysisSlots


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


@pytest.fixture
def client(settings, analyzer):
    app = api.create_app(settings, Service(settings, analyzer=analyzer))
    with TestClient(app) as c:
        yield c


@pytest.fixture
def wav(wav_bytes, heart_8k) -> bytes:
    return wav_bytes(heart_8k[: 8000 * 10], 8000)


def test_multipart_upload_is_analysed_and_kept(client, wav):
    r = client.post(
        "/v1/analyses",
        files={"file": ("chest.wav", wav, "audio/wav")},
        data={"site": "mitral", "patient_id": "P-7", "note": "sitting"},
    )
    assert r.status_code == 201
    body = r.json()
    assert (body["status"], body["site"], body["patient_id"], body["note"]) == (
        "done",
        "mitral",
        "P-7",
        "sitting",
    )
    assert body["result"]["label"] in ("normal", "abnormal", "unsure")
    assert body["reading"]["next_step"]
    assert body["disclaimer"].startswith("Decision support, not a diagnosis")
    audio = client.get(body["audio_url"])
    assert audio.status_code == 200
    assert audio.content == wav


def test_raw_body_upload_with_query_fields(client, wav):
    r = client.post("/v1/analyses?site=aortic&filename=x.wav", content=wav)
    assert r.status_code == 201
    assert r.json()["site"] == "aortic"
    assert r.json()["filename"] == "x.wav"


def test_queued_upload_is_accepted_and_left_for_the_worker(client, wav):
    r = client.post("/v1/analyses?wait=false", content=wav)
    assert r.status_code == 202
    assert r.json()["status"] == "pending"
    assert r.json()["result"] is None
    assert client.get("/health").json()["queue_depth"] == 1


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"%PDF-1.4 not audio at all" * 20, 415, "not a readable audio"),
        (b"", 415, "empty"),
    ],
)
def test_bad_audio_is_a_problem_with_a_human_message(client, body, status, words):
    r = client.post("/v1/analyses", content=body)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert words in r.json()["detail"]
    assert client.get("/v1/analyses").json()["total"] == 0  # nothing stored


def test_unusable_audio_is_422(client, wav_bytes, heart_8k):
    r = client.post("/v1/analyses", content=wav_bytes(heart_8k[:4000], 8000))
    assert r.status_code == 422
    assert "0.5 s long" in r.json()["detail"]


def test_too_large_upload_is_413_before_decoding(settings, analyzer):
    small = dataclasses.replace(settings, max_upload_bytes=1000)
    with TestClient(api.create_app(small, Service(small, analyzer=analyzer))) as c:
        r = c.post("/v1/analyses", content=b"\0" * 5000)
    assert r.status_code == 413
    assert "limit is" in r.json()["detail"]


def test_bad_fields_are_422_problems(client, wav):
    assert client.post("/v1/analyses?site=elbow", content=wav).status_code == 422
    r = client.post("/v1/analyses", data={"site": "mitral"}, files={"other": ("a", b"x")})
    assert r.status_code == 422
    assert "no `file` field" in r.json()["detail"]
    r = client.get("/v1/analyses?limit=0")
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


def test_history_lists_filters_gets_and_deletes(client, wav):
    ids = [
        client.post(f"/v1/analyses?site={site}", content=wav).json()["id"]
        for site in ("aortic", "mitral", "mitral")
    ]
    page = client.get("/v1/analyses?site=mitral&limit=1").json()
    assert page["total"] == 2
    assert [i["id"] for i in page["items"]] == [ids[2]]
    assert client.get("/v1/analyses?since=2999-01-01T00:00:00Z").json()["total"] == 0
    assert client.get(f"/v1/analyses/{ids[0]}").json()["site"] == "aortic"
    assert client.delete(f"/v1/analyses/{ids[0]}").status_code == 204
    gone = client.get(f"/v1/analyses/{ids[0]}")
    assert gone.status_code == 404
    assert "no analysis" in gone.json()["detail"]
    assert client.get(f"/v1/analyses/{ids[0]}/audio").status_code == 404


def test_batch_streams_one_line_per_file_in_order(client, wav):
    r = client.post(
        "/v1/analyses/batch",
        files=[
            ("files", ("a.wav", wav, "audio/wav")),
            ("files", ("junk.wav", b"junk", "audio/wav")),
            ("files", ("b.wav", wav, "audio/wav")),
        ],
    )
    assert r.status_code == 200
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [x["filename"] for x in lines] == ["a.wav", "junk.wav", "b.wav"]
    assert lines[0]["analysis"]["status"] == "done"
    assert lines[1]["error"]["status"] == 415
    assert client.get("/v1/analyses").json()["total"] == 2


def test_model_health_ready_and_metrics(client, wav):
    card = client.get("/v1/model").json()
    assert card["threshold"] > 0
    assert "not a diagnosis" in card["intended_use"]
    health = client.get("/health").json()
    assert health["ready"] is True
    assert health["model_version"] == card["version"]
    assert client.get("/health/ready").status_code == 200
    client.post("/v1/analyses", content=wav)
    text = client.get("/metrics").text
    assert (
        'auscult_http_requests_total{method="POST",route="/v1/analyses",status="201"} 1.0' in text
    )
    assert "auscult_http_request_seconds_bucket" in text
    assert f'auscult_model_info{{version="{card["version"]}"}} 1.0' in text
    assert "auscult_queue_depth 0.0" in text


def test_no_model_is_503_on_readiness_and_analysis_but_health_answers(settings):
    broken = dataclasses.replace(settings, models_dir=settings.work_dir / "none")
    with TestClient(api.create_app(broken)) as c:
        assert c.get("/health").json()["ready"] is False
        r = c.get("/health/ready")
        assert r.status_code == 503
        assert "model metadata not found" in r.json()["detail"]
        assert c.post("/v1/analyses", content=b"RIFF").status_code == 503


def test_key_is_required_when_set_and_beyond_loopback(settings, analyzer, wav):
    with pytest.raises(SystemExit, match="AUSCULT_API_KEY"):
        api.create_app(settings, host="0.0.0.0")
    keyed = dataclasses.replace(settings, api_key="s3cret")
    app = api.create_app(keyed, Service(keyed, analyzer=analyzer), host="0.0.0.0")
    with TestClient(app) as c:
        assert c.get("/v1/analyses").status_code == 403
        assert c.get("/v1/analyses", headers={"X-API-Key": "wrong"}).status_code == 403
        assert c.get("/metrics").status_code == 403
        assert c.get("/health").status_code == 200  # liveness needs no key
        ok = c.post("/v1/analyses", content=wav, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 201


def test_busy_slots_answer_503_with_retry_after_not_a_timeout():
    async def scenario() -> None:
        slots = AnalysisSlots(size=1, wait_s=0.05)
        first = asyncio.create_task(slots.run(time.sleep, 0.3))  # holds the only slot
        await asyncio.sleep(0.02)
        with pytest.raises(BusyError) as info:
            await slots.run(lambda: None)
        assert info.value.retry_after_s == 1
        assert info.value.http_status == 503
        await first
        assert await slots.run(lambda: "free again") == "free again"

    asyncio.run(scenario())


def test_busy_answer_over_http_has_retry_after(client, wav, monkeypatch):
    async def busy(*_args, **_kwargs):
        raise BusyError("all 2 analysis slots are busy; try again in a second", retry_after_s=1)

    monkeypatch.setattr(client.app.state.slots, "run", busy)
    r = client.post("/v1/analyses", content=wav)
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert "busy" in r.json()["detail"]


def test_openapi_documents_every_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/v1/analyses",
        "/v1/analyses/batch",
        "/v1/analyses/{entry_id}",
        "/v1/analyses/{entry_id}/audio",
        "/v1/model",
        "/health",
        "/health/ready",
        "/metrics",
    } <= set(paths)
    assert client.get("/docs").status_code == 200
