"""The clinic's labelled recordings: kept with who, what and why; never mixed with PhysioNet."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import api
from auscult.analyzer import Analyzer
from auscult.errors import InvalidAudioError, InvalidRequestError
from auscult.service import Service


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


def test_a_labelled_upload_is_kept_with_its_provenance(settings, wav_bytes, heart_8k):
    svc = Service(settings)
    item = svc.clinic.add(
        wav_bytes(heart_8k, 8000), "bed3.wav", label="abnormal", who="Dr Okafor",
        site="aortic", device="Littmann 3200", evidence="echocardiogram 2026-11-28",
    )  # fmt: skip
    assert (item.label, item.who, item.device, item.source) == (
        "abnormal", "Dr Okafor", "Littmann 3200", "upload"
    )  # fmt: skip
    assert item.duration_s == pytest.approx(20.0)
    assert item.audio_path.startswith(str(settings.work_dir / "training_data"))
    assert str(settings.data_dir) not in item.audio_path
    assert svc.clinic.counts() == {"normal": 0, "abnormal": 1}
    svc.clinic.delete(item.id)
    assert svc.clinic.items() == []


def test_bad_labelled_uploads_are_refused_with_a_reason(settings, wav_bytes, heart_8k):
    clinic = Service(settings).clinic
    with pytest.raises(InvalidRequestError, match="normal or abnormal"):
        clinic.add(wav_bytes(heart_8k, 8000), "x.wav", label="murmur", who="me")
    with pytest.raises(InvalidRequestError, match="who gave the label"):
        clinic.add(wav_bytes(heart_8k, 8000), "x.wav", label="normal", who="  ")
    with pytest.raises(InvalidAudioError):
        clinic.add(wav_bytes(heart_8k[:8000], 8000), "short.wav", label="normal", who="me")
    assert clinic.items() == []
    assert not list((settings.work_dir / "training_data").glob("*"))


def test_a_confirmed_analysis_is_kept_even_after_it_is_deleted(
    settings, analyzer, wav_bytes, heart_8k
):
    svc = Service(settings, analyzer=analyzer)
    done = svc.analyse_upload(wav_bytes(heart_8k, 8000), "p17.wav", site="mitral",
                              patient_id="P-17")  # fmt: skip
    kept = svc.confirm_label(done.entry.id, "abnormal", who="Dr Ng", evidence="echocardiogram")
    assert (kept.analysis_id, kept.source, kept.site, kept.patient_id) == (
        done.entry.id, "history", "mitral", "P-17"
    )  # fmt: skip
    svc.delete(done.entry.id)
    assert svc.clinic.get(kept.id).label == "abnormal"
    with open(kept.audio_path, "rb") as f:
        assert f.read() == wav_bytes(heart_8k, 8000)


def test_the_api_takes_labelled_recordings_and_confirmations(
    settings, analyzer, wav_bytes, heart_8k
):
    svc = Service(settings, analyzer=analyzer)
    with TestClient(api.create_app(settings, svc)) as client:
        r = client.post(
            "/v1/training-data",
            files={"file": ("a.wav", wav_bytes(heart_8k, 8000), "audio/wav")},
            data={"label": "normal", "who": "nurse A", "device": "iPhone 13", "site": "aortic"},
        )
        assert r.status_code == 201, r.text
        assert (r.json()["label"], r.json()["device"]) == ("normal", "iPhone 13")
        raw = client.post("/v1/training-data?label=abnormal&who=dr%20B",
                          content=wav_bytes(heart_8k, 8000))  # fmt: skip
        assert raw.status_code == 201
        bad = client.post("/v1/training-data?label=normal", content=wav_bytes(heart_8k, 8000))
        assert bad.status_code == 422
        assert [i["label"] for i in client.get("/v1/training-data").json()] == [
            "abnormal", "normal"
        ]  # fmt: skip
        made = client.post("/v1/analyses", content=wav_bytes(heart_8k, 8000)).json()
        ok = client.post(f"/v1/analyses/{made['id']}/confirmation",
                         json={"label": "abnormal", "who": "Dr C", "evidence": "echo"})  # fmt: skip
        assert ok.status_code == 201
        assert ok.json()["analysis_id"] == made["id"]
        assert client.post("/v1/analyses/999/confirmation",
                           json={"label": "normal", "who": "x"}).status_code == 404  # fmt: skip
        assert client.delete(f"/v1/training-data/{ok.json()['id']}").status_code == 204
        assert len(client.get("/v1/training-data").json()) == 2
