"""Retraining: a candidate from the clinic's recordings, judged by the promotion rule; a
cancelled run leaves the registry as it was."""

from __future__ import annotations

import pytest

from auscult.clinic_data import ClinicData
from auscult.datasets import read_physionet
from auscult.registry import Registry
from auscult.retrain import RetrainPlan, clinic_split, promotion_decision, run
from auscult.training import TrainingCancelled


def figures(fixed_auc, fixed_se, clinic_auc):
    return {"fixed": {"auc": fixed_auc, "sensitivity": fixed_se}, "clinic": {"auc": clinic_auc}}


def test_the_promotion_rule_guards_the_fixed_set_and_asks_for_a_clinic_gain():
    before = figures(0.930, 0.90, 0.70)
    assert promotion_decision(before, figures(0.926, 0.90, 0.80))[0]  # −0.004: allowed
    ok, why = promotion_decision(before, figures(0.920, 0.95, 0.90))
    assert not ok
    assert "fell by 0.010" in why
    ok, why = promotion_decision(before, figures(0.935, 0.85, 0.90))
    assert not ok
    assert "sensitivity" in why
    ok, why = promotion_decision(before, figures(0.935, 0.95, 0.70))
    assert not ok
    assert "no better on the clinic" in why


def test_the_clinic_split_keeps_each_patient_on_one_side(settings, wav_bytes, heart_8k):
    clinic = ClinicData(settings)
    for i in range(30):
        clinic.add(
            wav_bytes(heart_8k, 8000), f"{i}.wav", label="normal", who="t", patient_id=f"P-{i // 3}"
        )
    train, held = clinic_split(clinic.items(), 0.3)
    assert {i.patient_id for i in train}.isdisjoint({i.patient_id for i in held})
    assert 3 <= len(held) <= 18
    assert clinic_split(clinic.items(), 0.3) == (train, held)  # stable


@pytest.fixture
def clinic_of_training_e(settings, physionet_dir):
    """24 training-e recordings (12 abnormal) added as a clinic's labelled uploads."""
    records = read_physionet(physionet_dir, ["e"])
    chosen = [r for r in records if r.label][:12] + [r for r in records if not r.label][:12]
    clinic = ClinicData(settings)
    for r in chosen:
        clinic.add_file(
            r.path,
            label="abnormal" if r.label else "normal",
            who="test",
            device="training-e stethoscope",
            patient_id=r.name,
        )
    return clinic


def test_a_retraining_registers_a_judged_candidate(settings, clinic_of_training_e):
    steps = []
    result = run(
        settings, RetrainPlan(epochs=1, limit=240), report=lambda p, stage: steps.append((p, stage))
    )
    registry = Registry(settings)
    names = [v.name for v in registry.versions()]
    assert result["candidate"] in names
    assert len(names) == 2
    candidate = registry.get(result["candidate"])
    assert candidate.card.parent == result["base"]
    lo, hi = candidate.card.cnn_limits  # held to the fine-tuned CNN's own validation range
    assert lo < hi
    assert (candidate.folder / f"{settings.model_name}.keras").is_file()  # can be fine-tuned
    for side in ("before", "after"):
        assert set(result[side]) == {"fixed", "clinic"}
        assert 0 <= result[side]["clinic"]["auc"] <= 1
    assert result["clinic"]["train"] + result["clinic"]["held_out"] == 24
    expected, _ = promotion_decision(result["before"], result["after"])
    assert result["promoted"] == expected
    assert registry.active_name() == (result["candidate"] if expected else result["base"])
    assert [p for p, _ in steps] == sorted(p for p, _ in steps)  # progress only grows


def test_a_cancelled_retraining_registers_nothing(settings, clinic_of_training_e):
    with pytest.raises(TrainingCancelled):
        run(settings, RetrainPlan(epochs=2, limit=240), should_stop=lambda: True)
    assert len(Registry(settings).versions()) == 1


def test_the_api_refuses_a_retraining_without_clinic_recordings(settings):
    from fastapi.testclient import TestClient

    import api
    from auscult.service import Service

    with TestClient(api.create_app(settings, Service(settings))) as client:
        assert client.get("/v1/retraining").status_code == 404
        r = client.post("/v1/retraining")
        assert r.status_code == 422
        assert "at least 10 labelled clinic recordings" in r.json()["detail"]
        assert client.delete("/v1/retraining").status_code == 404


def test_a_job_runs_in_its_own_process_and_reports_through_its_status_file(
    settings, clinic_of_training_e
):
    import dataclasses
    import time

    from auscult import retrain

    settings = dataclasses.replace(settings, retrain_epochs=1, retrain_limit=240)
    pid = retrain.start_job(settings)
    assert retrain.read_status(settings).pid == pid
    with pytest.raises(Exception, match="running already"):
        retrain.start_job(settings)
    deadline = time.monotonic() + 600
    while retrain.running(settings) is not None and time.monotonic() < deadline:
        time.sleep(1)
    status = retrain.read_status(settings)
    assert status.state == "done", status.message
    assert status.progress == 1.0
    assert status.report["candidate"] in [v.name for v in Registry(settings).versions()]


def test_retraining_without_the_training_packages_says_how_to_get_them(settings, monkeypatch):
    import importlib.util

    from auscult import retrain

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorflow" else real(name, *a),
    )
    with pytest.raises(Exception, match="make setup-dev"):
        retrain.start_job(settings)
