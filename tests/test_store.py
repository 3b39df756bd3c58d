"""History in SQLite: the pending → done/error life of a row, filters, restarts, concurrency."""

from __future__ import annotations

import threading

import pytest

from auscult.analyzer import AnalysisResult
from auscult.store import SITES, SOURCES, Entry, Store


@pytest.fixture
def store(settings):
    s = Store(settings.db_path)
    yield s
    s.close()


def a_result(label: str = "normal", probability: float = 0.12) -> AnalysisResult:
    return AnalysisResult(
        label=label,
        probability=probability,
        threshold=0.5,
        reliable=label != "unsure",
        reason="abnormal pattern in 0 of 9 windows — no abnormal pattern found",
        duration_s=20.0,
        sample_rate=48000,
        channels=1,
        quality=0.81,
        heart_rate_bpm=72.3,
        window_probabilities=(0.1, 0.2, 0.05),
        window_starts_s=(0.0, 2.0, 4.0),
        window_s=4.0,
        padded=False,
        warnings=("2-channel audio was mixed down to mono",),
        model_version="test",
    )


def test_a_new_recording_waits_as_pending(store, tmp_path):
    entry_id = store.add_pending(
        source="phone", filename="mitral.wav", audio_path=tmp_path / "a.wav", site="mitral"
    )

    entry = store.get(entry_id)
    assert isinstance(entry, Entry)
    assert (entry.status, entry.source, entry.site, entry.filename) == (
        "pending",
        "phone",
        "mitral",
        "mitral.wav",
    )
    assert entry.audio_path == str(tmp_path / "a.wav")
    assert entry.label is None
    assert entry.result is None
    assert entry.analysed_at is None
    assert entry.created_at.endswith("+00:00")  # UTC, unambiguous across machines
    assert [e.id for e in store.pending()] == [entry_id]


def test_complete_stores_the_result_and_it_reads_back_unchanged(store):
    result = a_result("abnormal", 0.87)
    entry_id = store.add_pending(source="upload", filename="b.wav")

    store.complete(entry_id, result.to_dict())

    entry = store.get(entry_id)
    assert entry.status == "done"
    assert (entry.label, entry.probability, entry.duration_s) == ("abnormal", 0.87, 20.0)
    assert entry.analysed_at is not None
    assert entry.error is None
    assert AnalysisResult.from_dict(entry.result) == result
    assert store.pending() == []


def test_fail_keeps_a_human_message(store):
    entry_id = store.add_pending(source="inbox", filename="c.webm")

    store.fail(entry_id, "recording is 0.8 s long; record at least 2 s")

    entry = store.get(entry_id)
    assert entry.status == "error"
    assert entry.error == "recording is 0.8 s long; record at least 2 s"
    assert entry.label is None
    assert entry.result is None


def test_a_retry_that_succeeds_clears_the_error(store):
    entry_id = store.add_pending(source="inbox", filename="c.webm")
    store.fail(entry_id, "model missing")

    store.complete(entry_id, a_result().to_dict())

    entry = store.get(entry_id)
    assert entry.status == "done"
    assert entry.error is None


def test_record_adds_a_finished_row_in_one_call(store):
    done = store.record(source="batch", filename="d.wav", result=a_result().to_dict())
    failed = store.record(source="batch", filename="e.wav", error="not audio")
    nothing = store.record(source="batch", filename="f.wav")

    assert store.get(done).status == "done"
    assert store.get(failed).error == "not audio"
    assert store.get(nothing).error == "analysis failed"


def test_entries_are_newest_first_and_filter(store):
    ids = {}
    for i, (source, label) in enumerate(
        [("phone", "normal"), ("upload", "abnormal"), ("phone", "abnormal"), ("demo", None)]
    ):
        entry_id = store.add_pending(source=source, filename=f"{i}.wav")
        if label:
            store.complete(entry_id, a_result(label).to_dict())
        ids[i] = entry_id

    assert [e.id for e in store.entries()] == [ids[3], ids[2], ids[1], ids[0]]
    assert [e.id for e in store.entries(source="phone")] == [ids[2], ids[0]]
    assert [e.id for e in store.entries(label="abnormal")] == [ids[2], ids[1]]
    assert [e.id for e in store.entries(source="phone", label="abnormal")] == [ids[2]]
    assert [e.id for e in store.entries(status="pending")] == [ids[3]]
    assert [e.id for e in store.entries(since_id=ids[1])] == [ids[3], ids[2]]
    assert len(store.entries(limit=2)) == 2


def test_delete_removes_the_row(store):
    keep = store.add_pending(source="upload", filename="keep.wav")
    gone = store.add_pending(source="upload", filename="gone.wav")

    store.delete(gone)

    assert store.get(gone) is None
    assert [e.id for e in store.entries()] == [keep]
    store.delete(gone)  # deleting twice is harmless


def test_unknown_ids_read_as_none(store):
    assert store.get(12345) is None


def test_the_same_audio_file_twice_is_one_row(store, tmp_path):
    path = tmp_path / "inbox" / "2024-05-01_mitral.wav"

    first = store.add_pending(source="inbox", filename=path.name, audio_path=path)
    second = store.add_pending(source="inbox", filename=path.name, audio_path=str(path))

    assert first == second
    assert len(store.entries()) == 1
    assert store.known_paths() == {str(path)}


def test_rows_without_a_file_are_never_merged(store):
    a = store.add_pending(source="upload", filename="same.wav")
    b = store.add_pending(source="upload", filename="same.wav")
    assert a != b


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "fax"}, "unknown source 'fax'"),
        ({"source": "phone", "site": "elbow"}, "unknown auscultation site 'elbow'"),
    ],
)
def test_unknown_source_or_site_is_refused(store, kwargs, message):
    with pytest.raises(ValueError, match=message):
        store.add_pending(filename="x.wav", **kwargs)
    assert store.entries() == []


def test_every_declared_source_and_site_is_accepted(store):
    for source in SOURCES:
        for site in (*SITES, None):
            store.add_pending(source=source, filename="x.wav", site=site)
    assert len(store.entries(limit=1000)) == len(SOURCES) * (len(SITES) + 1)


def test_rows_survive_a_restart(settings):
    first = Store(settings.db_path)
    done = first.record(source="phone", filename="a.wav", result=a_result().to_dict())
    waiting = first.add_pending(source="phone", filename="b.wav", audio_path="/inbox/b.wav")
    first.close()

    again = Store(settings.db_path)
    try:
        assert again.get(done).result == a_result().to_dict()
        assert [e.id for e in again.pending()] == [waiting]
        # the unique audio path still holds after the restart
        assert (
            again.add_pending(source="phone", filename="b.wav", audio_path="/inbox/b.wav")
            == waiting
        )
    finally:
        again.close()


def test_a_missing_folder_is_created(tmp_path):
    store = Store(tmp_path / "deep" / "er" / "auscult.db")
    try:
        assert store.add_pending(source="api", filename="x.wav") == 1
    finally:
        store.close()


def _write_many(store: Store, prefix: str, n: int, errors: list[BaseException]) -> None:
    try:
        for i in range(n):
            entry_id = store.add_pending(
                source="phone", filename=f"{prefix}{i}.wav", audio_path=f"/inbox/{prefix}{i}.wav"
            )
            store.complete(entry_id, {"label": "normal", "probability": i / n, "duration_s": 1.0})
    except BaseException as exc:  # reported to the main thread
        errors.append(exc)


@pytest.mark.parametrize("connections", ["shared", "separate"])
def test_concurrent_writers_lose_nothing(settings, connections):
    """The phone page and the analyzer write at once (one Store, or one each)."""
    n = 150
    main = Store(settings.db_path)
    other = main if connections == "shared" else Store(settings.db_path)
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_write_many, args=(main, "a", n, errors)),
        threading.Thread(target=_write_many, args=(other, "b", n, errors)),
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors
        entries = main.entries(limit=10 * n)
        assert len(entries) == 2 * n
        assert len({e.id for e in entries}) == 2 * n
        assert {e.status for e in entries} == {"done"}
        assert len(main.known_paths()) == 2 * n
    finally:
        if other is not main:
            other.close()
        main.close()
