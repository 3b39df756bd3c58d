"""The service layer every door uses: analyse, receive, claim, list, delete, export."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from auscult.analyzer import Analyzer
from auscult.errors import (
    InvalidAudioError,
    InvalidRequestError,
    NotAudioError,
    NotFoundError,
    UploadTooLargeError,
)
from auscult.service import Service
from auscult.store import Store
from auscult.worker import Worker, read_heartbeat


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


@pytest.fixture
def service(settings, analyzer) -> Service:
    return Service(settings, analyzer=analyzer)


def test_every_error_knows_its_http_status():
    assert (InvalidAudioError.http_status, NotAudioError.http_status) == (422, 415)
    assert UploadTooLargeError.http_status == 413
    assert NotFoundError.http_status == 404
    assert InvalidRequestError("x").http_status == 422


def test_upload_is_analysed_stored_with_site_patient_and_timing(service, wav_bytes, heart_8k):
    done = service.analyse_upload(
        wav_bytes(heart_8k, 8000), "a.wav", site="mitral", patient_id="P-1", note="after exercise"
    )
    entry = service.get(done.entry.id)
    assert (entry.status, entry.site, entry.patient_id, entry.note) == (
        "done",
        "mitral",
        "P-1",
        "after exercise",
    )
    assert entry.quality == pytest.approx(done.result.quality)
    assert entry.elapsed_ms > 0
    assert done.model_input is not None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"site": "elbow"}, "unknown auscultation site"), ({"note": "x" * 501}, "under 500")],
)
def test_bad_request_fields_are_refused_before_any_work(
    service, wav_bytes, heart_8k, kwargs, message
):
    with pytest.raises(InvalidRequestError, match=message):
        service.analyse_upload(wav_bytes(heart_8k, 8000), "a.wav", **kwargs)
    assert service.store.entries() == []


def test_too_large_upload_is_refused(settings, analyzer):
    import dataclasses

    small = Service(dataclasses.replace(settings, max_upload_bytes=1000), analyzer=analyzer)
    with pytest.raises(UploadTooLargeError, match="limit is"):
        small.analyse_upload(b"\0" * 2000, "big.wav")


def test_received_recording_waits_for_the_worker_and_is_claimed_once(service, wav_bytes, heart_8k):
    delivery = service.receive(wav_bytes(heart_8k, 8000), site="aortic")
    assert service.get(delivery.entry_id).status == "pending"
    claimed = service.store.claim_next()
    assert (claimed.id, claimed.status) == (delivery.entry_id, "analysing")
    assert service.store.claim_next() is None  # a second worker gets nothing
    assert service.analyse_next() is None


def test_a_claim_left_by_a_killed_worker_is_taken_over(settings, service, wav_bytes, heart_8k):
    delivery = service.receive(wav_bytes(heart_8k, 8000))
    service.store.claim_next()  # this worker dies here
    assert service.store.claim_next(stale_after_s=60) is None
    store = Store(settings.db_path)
    with store._tx() as c:  # the claim is old: analysing since long ago
        c.execute("UPDATE analyses SET claimed_at='2000-01-01T00:00:00.000+00:00'")
    assert service.analyse_next() == delivery.entry_id
    assert service.get(delivery.entry_id).status == "done"


def test_two_workers_never_analyse_the_same_recording(settings, analyzer, wav_bytes, heart_8k):
    first = Service(settings, analyzer=analyzer)
    ids = {first.receive(wav_bytes(heart_8k[: 8000 * 6], 8000)).entry_id for _ in range(6)}
    done: list[list[int]] = [[], []]

    def work(i: int) -> None:
        svc = Service(settings, Store(settings.db_path), analyzer)  # own connection, like a process
        done[i] = svc.process_pending()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(done[0] + done[1]) == sorted(ids)
    assert not set(done[0]) & set(done[1])


def test_missing_audio_and_bad_audio_become_failures_with_messages(service, settings):
    settings.inbox_dir.mkdir(parents=True)
    bad = settings.inbox_dir / "bad.wav"
    bad.write_bytes(b"RIFF garbage")
    gone = service.store.add_pending(source="inbox", filename="gone.wav", audio_path="/nope.wav")
    broken = service.store.add_pending(source="inbox", filename="bad.wav", audio_path=bad)
    assert service.process_pending() == [gone, broken]
    assert "missing" in service.get(gone).error
    assert "not a readable audio" in service.get(broken).error
    assert bad.exists()  # the audio is kept for a person to look at


def test_history_filters_pages_and_counts(service, wav_bytes, heart_8k):
    for site in ("aortic", "mitral", "mitral"):
        service.analyse_upload(wav_bytes(heart_8k[: 8000 * 6], 8000), f"{site}.wav", site=site)
    page = service.history(site="mitral", limit=1)
    assert (page.total, len(page.entries)) == (2, 1)
    assert service.history(site="mitral", limit=1, offset=1).entries[0].id < page.entries[0].id
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert service.history(since=tomorrow).total == 0
    assert service.history(until=tomorrow).total == 3
    with pytest.raises(InvalidRequestError, match="unknown label"):
        service.history(label="maybe")


def test_delete_removes_the_row_and_owned_audio_but_never_a_demo_file(
    service, tmp_path, wav_bytes, heart_8k
):
    up = service.analyse_upload(wav_bytes(heart_8k, 8000), "a.wav")
    service.delete(up.entry.id)
    assert not Path(up.entry.audio_path).exists()
    demo = tmp_path / "demo.wav"
    demo.write_bytes(wav_bytes(heart_8k, 8000))
    kept = service.analyse_file(demo)
    service.delete(kept.entry.id)
    assert demo.exists()
    with pytest.raises(NotFoundError, match="no analysis"):
        service.delete(kept.entry.id)


def test_export_holds_result_reading_and_disclaimer(service, wav_bytes, heart_8k):
    up = service.analyse_upload(wav_bytes(heart_8k, 8000), "a.wav", patient_id="P-2")
    data = json.loads(service.export_json(up.entry, reference="normal"))
    assert data["result"]["label"] == up.result.label
    assert data["reading"]["next_step"]
    assert (data["patient_id"], data["reference_label"]) == ("P-2", "normal")
    assert data["disclaimer"].startswith("Decision support, not a diagnosis")


def test_worker_analyses_a_dropped_file_and_says_it_is_alive(
    service, settings, wav_bytes, heart_8k
):
    settings.inbox_dir.mkdir(parents=True)
    dropped = settings.inbox_dir / "dropped.wav"
    dropped.write_bytes(wav_bytes(heart_8k, 8000))
    os.utime(dropped, (time.time() - 5, time.time() - 5))
    stop = threading.Event()
    worker = Worker(service, poll_s=0.05)
    worker.start_thread(stop)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            entries = service.store.entries()
            if entries and entries[0].status == "done":
                break
            time.sleep(0.05)
        assert [(e.filename, e.status) for e in service.store.entries()] == [
            ("dropped.wav", "done")
        ]
        beat = read_heartbeat(settings)
        assert beat is not None
        assert beat.alive()
        assert beat.problem == ""
    finally:
        stop.set()


def test_worker_without_a_model_leaves_recordings_waiting_and_says_why(
    settings, wav_bytes, heart_8k
):
    import dataclasses

    broken = dataclasses.replace(settings, models_dir=settings.work_dir / "no-model")
    service = Service(broken)
    delivery = service.receive(wav_bytes(heart_8k, 8000))
    worker = Worker(service)
    assert worker.run_once() == []
    assert "model metadata not found" in worker.problem
    assert service.get(delivery.entry_id).status == "pending"  # nothing lost
