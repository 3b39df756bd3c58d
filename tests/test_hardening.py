"""Hardening rules of the one upload path (issue "Hardening"): no lost or doubled recording,
bounded uploads in flight, human answers for every failure, and crash debris settled."""

from __future__ import annotations

import errno
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import mobile_recorder
from auscult import inbox
from auscult.service import Service
from auscult.store import Store
from config import PROJECT_ROOT

TOKEN = "hardening-token-0123456789"


@pytest.fixture
def service(settings) -> Service:
    return Service(settings)


@pytest.fixture
def phone(settings, service):
    app = mobile_recorder.create_app(settings, TOKEN, service=service)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def send(client, data: bytes, recording_id: str | None = None):
    headers = {mobile_recorder.TOKEN_HEADER: TOKEN, "Content-Type": "audio/wav"}
    if recording_id:
        headers[mobile_recorder.RECORDING_ID_HEADER] = recording_id
    return client.post("/api/recordings?site=mitral", content=data, headers=headers)


@pytest.fixture
def wav(wav_bytes, heart_8k) -> bytes:
    return wav_bytes(heart_8k[: 8000 * 4], 8000)


def test_the_row_exists_before_the_file_is_visible_to_the_folder_scan(service, wav, monkeypatch):
    real_move = inbox.move_into_place
    scanned: list[list[int]] = []

    def move_then_scan(part: Path, target: Path) -> Path:
        moved = real_move(part, target)
        if target.parent == service.settings.inbox_dir:  # (other threads write heartbeats)
            scanned.append(service.scan_inbox(settle_s=0))  # a scan at the worst moment
        return moved

    monkeypatch.setattr(inbox, "move_into_place", move_then_scan)
    delivery = service.receive(wav, site="mitral")
    assert scanned == [[]]  # the scan saw the file's row and left it alone
    (entry,) = service.store.entries()
    assert (entry.id, entry.status, entry.site) == (delivery.entry_id, "pending", "mitral")


def test_a_retried_recording_is_stored_once(phone, service, wav):
    recording_id = str(uuid.uuid4())
    first = send(phone, wav, recording_id)
    again = send(phone, wav, recording_id)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert len(service.store.entries()) == 1
    assert send(phone, wav, str(uuid.uuid4())).status_code == 201  # a new recording is new


def test_a_full_disk_is_a_507_with_a_human_message_and_leaves_nothing(
    phone, service, settings, wav, monkeypatch
):
    def full(fd, mode):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(inbox.os, "fdopen", full)
    r = send(phone, wav, "rec-1")
    assert r.status_code == 507
    assert r.json() == {
        "stored": False,
        "error": "the computer's disk is full; free some space on it and send the recording again",
    }
    assert service.store.entries() == []
    assert not any(settings.inbox_dir.iterdir())


def test_an_unexpected_error_is_json_with_a_message_not_a_bare_500(phone, wav, monkeypatch):
    def broken(*_a, **_k):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(Store, "add_receiving", broken)
    r = send(phone, wav)
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    assert "kept on the phone" in r.json()["error"]
    assert "RuntimeError" not in r.text


def test_uploads_beyond_the_bytes_in_flight_get_503_with_retry_after(phone, service, wav):
    from contextlib import ExitStack

    limit = service.settings.max_upload_bytes
    full = service.settings.max_inflight_upload_bytes // limit  # large uploads in flight
    with ExitStack() as others:
        for _ in range(full):
            others.enter_context(service.upload_slot(limit))
        r = send(phone, wav)
        assert r.status_code == 503
        assert r.headers["retry-after"] == "2"
        assert "send again" in r.json()["error"]
    with service.upload_slot(service.settings.max_inflight_upload_bytes - len(wav) - 10**6):
        assert send(phone, wav).status_code == 201  # small ones still fit beside big ones
    assert service._inflight_bytes == 0  # every reservation was given back


def test_an_upload_that_hides_its_size_reserves_the_whole_limit(service):
    limit = service.settings.max_upload_bytes
    with service.upload_slot(None):
        assert service._inflight_bytes == limit
    with service.upload_slot(10 * limit):  # a claim above the limit is refused later anyway
        assert service._inflight_bytes == limit


def test_crash_debris_is_cleaned_and_half_done_deliveries_are_settled(service, settings, wav):
    settings.inbox_dir.mkdir(parents=True)
    old = time.time() - 600
    debris = settings.inbox_dir / ".abc.part"
    debris.write_bytes(b"half a recording")
    os.utime(debris, (old, old))
    fresh = settings.inbox_dir / ".def.part"  # another process is writing this one now
    fresh.write_bytes(b"in flight")
    landed = settings.inbox_dir / "phone-landed.wav"
    landed.write_bytes(wav)
    kept = service.store.add_receiving(source="phone", filename=landed.name, audio_path=landed)
    lost = service.store.add_receiving(
        source="phone", filename="gone.wav", audio_path=settings.inbox_dir / "gone.wav"
    )
    with service.store._tx() as c:  # both rows were left by a crash ten minutes ago
        c.execute("UPDATE analyses SET created_at='2000-01-01T00:00:00.000+00:00'")
    service.recover()
    assert not debris.exists()
    assert fresh.exists()
    assert service.get(kept).status == "pending"
    assert service.store.get(lost) is None
    assert service.process_pending() == [kept]


def test_the_database_is_private_to_its_user(settings):
    Store(settings.db_path).close()
    assert oct(settings.db_path.stat().st_mode & 0o777) == oct(0o600)


# --------------------------------------------------------------------------------------
# fault injection: the receiving process is killed at random moments
# --------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PhonePage:
    """``mobile_recorder.py`` over plain HTTP in its own process, restartable."""

    def __init__(self, work: Path) -> None:
        self.port = _free_port()
        self.env = dict(os.environ, AUSCULT_WORK_DIR=str(work), AUSCULT_PAIRING_TOKEN=TOKEN)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "mobile_recorder.py", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the phone page did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


@pytest.mark.slow
def test_killing_the_receiver_at_random_never_loses_or_doubles_a_recording(
    tmp_path, settings, wav_bytes, heart_8k
):
    work = tmp_path / "work"
    page = PhonePage(work)
    page.start()
    answered: dict[str, int] = {}  # recording id → entry id of its 201/200 answer
    ids = [str(uuid.uuid4()) for _ in range(100)]
    data = wav_bytes(heart_8k[: 8000 * 3], 8000)
    done = threading.Event()

    def killer() -> None:
        rng = random.Random(7)
        while not done.is_set():
            time.sleep(rng.uniform(0.3, 1.2))
            if done.is_set():
                return
            page.kill()
            page.start()

    thread = threading.Thread(target=killer)
    thread.start()
    deadline = time.monotonic() + 300  # a livelock fails the test instead of hanging it
    try:
        for recording_id in ids:  # the phone's behaviour: send until an answer says stored
            while recording_id not in answered:
                assert time.monotonic() < deadline, f"stuck at {len(answered)} of {len(ids)}"
                request = urllib.request.Request(
                    f"http://127.0.0.1:{page.port}/api/recordings?site=mitral",
                    data=data,
                    headers={
                        mobile_recorder.TOKEN_HEADER: TOKEN,
                        mobile_recorder.RECORDING_ID_HEADER: recording_id,
                        "Content-Type": "audio/wav",
                    },
                )
                try:
                    with urllib.request.urlopen(request, timeout=5) as r:
                        answered[recording_id] = json.loads(r.read())["id"]
                except (OSError, http.client.HTTPException, ValueError):
                    time.sleep(0.05)  # killed mid-request or mid-answer: send it again
    finally:
        done.set()
        thread.join()
        page.kill()

    service = Service(settings.__class__(**{**settings.__dict__, "work_dir": work}))
    with service.store._tx() as c:  # pretend the crash windows are old enough to settle
        c.execute("UPDATE analyses SET created_at='2000-01-01T00:00:00.000+00:00'")
    for part in work.glob("inbox/.*.part"):
        os.utime(part, (0, 0))
    service.recover()
    service.process_pending()
    rows = service.store.entries(limit=1000)
    by_id = {}
    for row in rows:
        by_id.setdefault(row.client_id, []).append(row)
    assert set(by_id) == set(ids)  # every recording is there …
    assert all(len(v) == 1 for v in by_id.values())  # … once
    assert {r.status for r in rows} == {"done"}  # and analysed
    assert {answered[i] for i in ids} == {by_id[i][0].id for i in ids}
    assert not list(work.glob("inbox/.*.part"))


# --------------------------------------------------------------------------------------
# idle and slow connections (defect 2)
# --------------------------------------------------------------------------------------
def _limited_open_files() -> None:  # pragma: no cover - runs in the child before exec
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # a common default soft limit


@pytest.fixture
def guarded_page(tmp_path):
    """The phone page over HTTP, started under a 1,024 open-files soft limit, short guards."""
    page = PhonePage(tmp_path / "work")
    page.env.update(AUSCULT_REQUEST_HEAD_S="1.0", AUSCULT_BODY_IDLE_S="1.0")
    real_popen = subprocess.Popen

    def popen(*args, **kwargs):
        return real_popen(*args, preexec_fn=_limited_open_files, **kwargs)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(subprocess, "Popen", popen)
        page.start()
    yield page
    page.kill()


def _get(port: int, path: str) -> tuple[int, float]:
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, time.perf_counter() - started


@pytest.mark.slow
def test_a_thousand_idle_connections_do_not_starve_the_phone_page(guarded_page, wav):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 1300:
        pytest.skip(f"this machine allows only {hard} open files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1300), hard))
    idle = []
    try:
        for _ in range(1100):
            idle.append(socket.create_connection(("127.0.0.1", guarded_page.port), timeout=5))
        status, seconds = _get(guarded_page.port, "/healthz")
        assert status == 200
        print(f"/healthz with 1,100 idle connections open: {seconds * 1000:.0f} ms")
        request = urllib.request.Request(
            f"http://127.0.0.1:{guarded_page.port}/api/recordings",
            data=wav,
            headers={mobile_recorder.TOKEN_HEADER: TOKEN, "Content-Type": "audio/wav"},
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 201
    finally:
        for s in idle:
            s.close()


def test_a_request_head_sent_too_slowly_is_cut_off(guarded_page):
    with socket.create_connection(("127.0.0.1", guarded_page.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        s.settimeout(5)
        started = time.monotonic()
        assert s.recv(100) == b""  # closed by the server …
        assert time.monotonic() - started < 4  # … after request_head_s (1 s here)


def test_a_body_that_stalls_is_answered_408(guarded_page, wav):
    with socket.create_connection(("127.0.0.1", guarded_page.port), timeout=10) as s:
        head = (
            f"POST /api/recordings HTTP/1.1\r\nHost: x\r\n{mobile_recorder.TOKEN_HEADER}: {TOKEN}"
            f"\r\nContent-Type: audio/wav\r\nContent-Length: {len(wav)}\r\n\r\n"
        )
        s.sendall(head.encode() + wav[:1000])  # then nothing
        answer = ""
        while "}" not in answer:  # the JSON body may come in a second segment
            chunk = s.recv(4096).decode(errors="replace")
            if not chunk:
                break
            answer += chunk
    assert answer.startswith("HTTP/1.1 408")
    assert "stopped arriving" in answer


def test_a_retry_after_a_delivery_died_half_way_stores_the_recording(
    service, settings, wav, monkeypatch
):
    monkeypatch.setattr(inbox, "_TAKE_OVER_AFTER_S", 0.1)
    # the first attempt died after its row, before its file landed
    service.store.add_receiving(
        source="phone", filename="x.wav", audio_path=settings.inbox_dir / "x.wav", client_id="r1"
    )
    retry = service.receive(wav, client_id="r1")
    assert not retry.duplicate
    (entry,) = service.store.entries()
    assert (entry.id, entry.status, entry.client_id) == (retry.entry_id, "pending", "r1")
    assert Path(entry.audio_path).is_file()


def test_a_retry_after_the_file_landed_gets_the_first_entry(service, settings, wav):
    settings.inbox_dir.mkdir(parents=True)
    landed = settings.inbox_dir / "landed.wav"
    landed.write_bytes(wav)
    first = service.store.add_receiving(
        source="phone", filename=landed.name, audio_path=landed, client_id="r2"
    )
    retry = service.receive(wav, client_id="r2")
    assert (retry.entry_id, retry.duplicate) == (first, True)
    assert service.get(first).status == "pending"
    assert len(service.store.entries()) == 1
