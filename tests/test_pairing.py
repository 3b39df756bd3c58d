"""Pairing codes: private, expiring, renewable; the phone page honours the current one only."""

from __future__ import annotations

import dataclasses
import json
import time

from fastapi.testclient import TestClient

import mobile_recorder
from auscult.pairing import Pairings, with_token


def test_a_new_code_is_private_and_valid_for_its_lifetime(settings):
    pairings = Pairings(dataclasses.replace(settings, pairing_ttl_s=60))
    code = pairings.new_code()
    assert oct(pairings.path.stat().st_mode & 0o777) == oct(0o600)
    assert len(code.token) >= 20
    assert code.expires_at - code.created_at == 60
    assert pairings.check(code.token)
    assert not pairings.check(code.token[:-1])
    assert not pairings.check("")


def test_a_new_code_revokes_the_old_one_at_once(settings):
    pairings = Pairings(settings)
    old = pairings.new_code()
    new = pairings.new_code()
    assert not pairings.check(old.token)
    assert Pairings(settings).check(new.token)  # another process sees it too


def test_an_expired_code_is_refused(settings):
    pairings = Pairings(settings)
    code = pairings.new_code()
    stale = {**json.loads(pairings.path.read_text()), "expires_at": time.time() - 1}
    pairings.path.write_text(json.dumps(stale))
    assert not Pairings(settings).check(code.token)


def test_no_code_on_file_pairs_nothing(settings):
    assert not Pairings(settings).check("")
    assert not Pairings(settings).check("anything")


def test_with_token_sets_only_the_t_parameter():
    assert with_token("https://10.0.0.2:8503/?t=old", "new") == "https://10.0.0.2:8503/?t=new"
    assert with_token("https://h:1/?x=1", "n") == "https://h:1/?x=1&t=n"


def test_the_phone_page_follows_the_current_code(settings, wav_bytes, heart_8k):
    pairings = Pairings(settings)
    first = pairings.new_code()
    app = mobile_recorder.create_app(settings)  # no fixed token: the file decides
    with TestClient(app) as phone:

        def session(token: str) -> int:
            return phone.get(
                "/api/session", headers={mobile_recorder.TOKEN_HEADER: token}
            ).status_code

        assert session(first.token) == 200
        second = pairings.new_code()
        assert session(first.token) == 403
        assert session(second.token) == 200
        r = phone.post(
            "/api/recordings",
            content=wav_bytes(heart_8k[: 8000 * 4], 8000),
            headers={mobile_recorder.TOKEN_HEADER: first.token, "Content-Type": "audio/wav"},
        )
        assert r.status_code == 403
        assert "expired or replaced" in r.json()["error"]
