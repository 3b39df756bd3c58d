"""The model registry: one active version, switched atomically, seen without a restart,
never left broken by a crash or a corrupt candidate."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from auscult.analyzer import Analyzer
from auscult.errors import AuscultError
from auscult.model_card import load_card
from auscult.registry import Registry, open_at_start
from config import PROJECT_ROOT


def candidate(registry: Registry, version: str, threshold: float | None = None) -> dict:
    """A card for the committed model file under another version name (and threshold)."""
    card = load_card(registry.settings).to_dict()
    card["version"] = version
    if threshold is not None:
        card["threshold"] = threshold
    return card


@pytest.fixture
def registry(settings) -> Registry:
    reg = Registry(settings)
    reg.ensure()
    return reg


def test_the_committed_model_is_the_first_active_version(registry, settings):
    committed = load_card(settings).version
    assert [v.name for v in registry.versions()] == [committed]
    active = registry.active()
    assert active.version == committed
    assert active.tflite_path.parent == registry.versions_dir / committed
    assert registry.history()[0]["why"] == "the committed model is the first version"
    registry.ensure()  # opening it again changes nothing
    assert len(registry.versions()) == 1


def test_an_update_serves_its_new_committed_model_in_place_of_the_shipped_one(
    registry, new_release, wav_bytes, heart_8k
):
    shipped = registry.active().version
    updated = new_release("2099.03.01-0000")

    analyzer = Analyzer(settings=updated)  # before anything opens the registry again
    assert analyzer.analyze(wav_bytes(heart_8k, 8000)).model_version == "2099.03.01-0000"
    Registry(updated).ensure()
    assert Registry(updated).active().version == "2099.03.01-0000"
    assert {v.name for v in registry.versions()} == {shipped, "2099.03.01-0000"}
    last = registry.history()[-1]
    assert (last["by"], last["previous"]) == ("upgrade", shipped)
    assert analyzer.analyze(wav_bytes(heart_8k, 8000)).model_version == "2099.03.01-0000"


def test_a_start_after_an_update_says_which_model_now_serves(settings, new_release):
    assert open_at_start(settings) == ""  # the first start: the committed model is first
    shipped = Registry(settings).active_name()
    updated = new_release("2099.04.01-0000")

    said = open_at_start(updated)

    assert Registry(updated).active_name() == "2099.04.01-0000"
    assert said == f"Model 2099.04.01-0000, this release's, now serves in place of {shipped}."
    assert open_at_start(updated) == ""  # and only once


def test_a_version_the_clinic_promoted_stays_active_across_an_update(
    registry, settings, new_release
):
    registry.register(settings.tflite_path, candidate(registry, "2099.01.06-0000"))
    registry.promote("2099.01.06-0000", by="dr-a", why="better on our recordings")
    updated = new_release("2099.03.02-0000")

    Registry(updated).ensure()

    assert Registry(updated).active().version == "2099.01.06-0000"
    assert "2099.03.02-0000" in {v.name for v in registry.versions()}  # offered, not served


def test_a_version_trained_with_another_front_end_is_never_served(
    registry, settings, wav_bytes, heart_8k
):
    old_front_end = dataclasses.replace(settings, log_mel_rate=8000)
    card = candidate(registry, "2099.01.07-0000")
    card["preprocessing"] = old_front_end.preprocessing()
    registry.register(settings.tflite_path, card)
    with pytest.raises(AuscultError, match="trained with another front end"):
        registry.promote("2099.01.07-0000", by="dr-a")
    Registry(old_front_end).promote("2099.01.07-0000", by="dr-a")  # under the old release

    assert registry.active().version == "committed"
    result = Analyzer(settings=settings).analyze(wav_bytes(heart_8k, 8000))
    assert result.model_version == load_card(settings).version
    registry.ensure()  # the next opening serves this release's model again, logged
    assert registry.active().version == load_card(settings).version
    assert registry.history()[-1]["by"] == "upgrade"


def test_a_broken_pointer_serves_the_committed_model_without_reloading_it_each_time(
    registry, settings, wav_bytes, heart_8k
):
    registry.pointer.write_text(json.dumps({"version": "2099.09.09-0000"}))  # never registered
    analyzer = Analyzer(settings=settings)
    runner = analyzer.current_runner()

    result = analyzer.analyze(wav_bytes(heart_8k, 8000))

    assert result.model_version == load_card(settings).version
    assert analyzer.current_runner() is runner


def test_promotion_and_rollback_reach_a_running_analyzer_without_restart(
    registry, settings, wav_bytes, heart_8k
):
    analyzer = Analyzer(settings=settings)
    first = analyzer.analyze(wav_bytes(heart_8k, 8000)).model_version
    registry.register(settings.tflite_path, candidate(registry, "2099.01.01-0000", 0.999))
    assert analyzer.analyze(wav_bytes(heart_8k, 8000)).model_version == first  # a candidate
    started = time.perf_counter()
    registry.promote("2099.01.01-0000", by="test", why="better on the clinic's recordings")
    promote_s = time.perf_counter() - started
    result = analyzer.analyze(wav_bytes(heart_8k, 8000))
    assert result.model_version == "2099.01.01-0000"
    assert result.threshold == pytest.approx(0.999)
    registry.rollback(first, by="test")
    assert analyzer.analyze(wav_bytes(heart_8k, 8000)).model_version == first
    assert [e["version"] for e in registry.history()][-2:] == ["2099.01.01-0000", first]
    assert registry.history()[-1]["why"] == "rollback from 2099.01.01-0000"
    assert promote_s < 1.0


def test_a_corrupt_or_unloadable_candidate_is_refused_and_nothing_is_kept(
    registry, settings, tmp_path
):
    broken = tmp_path / "auscult_cnn.tflite"
    data = bytearray(settings.tflite_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    broken.write_bytes(bytes(data))
    with pytest.raises(AuscultError, match="does not match the sha256"):
        registry.register(broken, candidate(registry, "2099.01.02-0000"))
    garbage = tmp_path / "garbage" / "auscult_cnn.tflite"
    garbage.parent.mkdir()
    garbage.write_bytes(b"not a model at all")
    card = candidate(registry, "2099.01.03-0000")
    from auscult.runner import sha256_of

    card["files"] = {garbage.name: {"bytes": 18, "sha256": sha256_of(garbage)}}
    with pytest.raises(AuscultError, match="does not load"):
        registry.register(garbage, card)
    assert len(registry.versions()) == 1
    assert not any(p.name.startswith(".") for p in registry.versions_dir.iterdir())
    with pytest.raises(AuscultError, match="no model version"):
        registry.promote("2099.01.03-0000")


FLIP = """
import sys
sys.path.insert(0, {root!r})
import dataclasses
from pathlib import Path
from auscult.registry import Registry
from config import Settings
reg = Registry(dataclasses.replace(Settings(), work_dir=Path({work!r})))
names = [v.name for v in reg.versions()]
print("ready", flush=True)
i = 0
while True:
    reg.promote(names[i % 2], by="flip")
    i += 1
"""


def test_kill_9_during_promotions_leaves_a_valid_pointer(registry, settings):
    registry.register(settings.tflite_path, candidate(registry, "2099.01.04-0000"))
    names = {v.name for v in registry.versions()}
    code = FLIP.format(root=str(PROJECT_ROOT), work=str(settings.work_dir))
    for delay in (0.05, 0.13, 0.21, 0.34, 0.55):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        pointer = json.loads(registry.pointer.read_text())  # whole, parseable
        assert pointer["version"] in names
        assert registry.active().version in names
    leftovers = [p for p in registry.root.iterdir() if p.name.endswith(".part")]
    for part in leftovers:  # a temporary file the kill left is never the pointer
        assert part.name.startswith(".")


REGISTER = """
import sys
sys.path.insert(0, {root!r})
import dataclasses, json
from pathlib import Path
from auscult.registry import Registry
from config import Settings
reg = Registry(dataclasses.replace(Settings(), work_dir=Path({work!r})))
card = json.loads(Path({card!r}).read_text())
print("ready", flush=True)
reg.register(Path({model!r}), card)
print("registered", flush=True)
"""


def test_kill_9_during_a_registration_leaves_no_half_version(registry, settings, tmp_path):
    card_path = tmp_path / "card.json"
    card_path.write_text(json.dumps(candidate(registry, "2099.01.05-0000")))
    code = REGISTER.format(root=str(PROJECT_ROOT), work=str(settings.work_dir),
                           card=str(card_path), model=str(settings.tflite_path))  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.02)  # inside the copy / check
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    names = [v.name for v in registry.versions()]
    assert names in ([load_card(settings).version],
                     [load_card(settings).version, "2099.01.05-0000"])  # fmt: skip
    registry.ensure()  # the next opening clears what the kill left
    assert not any(p.name.startswith(".incoming") for p in registry.versions_dir.iterdir())
    assert registry.active().version == load_card(settings).version


def test_the_api_lists_versions_and_switches_the_one_that_serves(
    registry, settings, wav_bytes, heart_8k
):
    from fastapi.testclient import TestClient

    import api
    from auscult.service import Service

    registry.register(settings.tflite_path, candidate(registry, "2099.01.06-0000"))
    committed = load_card(settings).version
    with TestClient(api.create_app(settings, Service(settings))) as client:
        listed = client.get("/v1/models").json()
        assert [(v["version"], v["active"]) for v in listed] == [
            (committed, True),
            ("2099.01.06-0000", False),
        ]
        r = client.put("/v1/models/active", json={"version": "2099.01.06-0000", "why": "test"})
        assert r.status_code == 200
        assert client.get("/v1/model").json()["version"] == "2099.01.06-0000"
        made = client.post("/v1/analyses", content=wav_bytes(heart_8k, 8000)).json()
        assert made["result"]["model_version"] == "2099.01.06-0000"
        assert client.put("/v1/models/active", json={"version": "nope"}).status_code == 404
        client.put("/v1/models/active", json={"version": committed, "why": "rollback"})
        made = client.post("/v1/analyses", content=wav_bytes(heart_8k, 8000)).json()
        assert made["result"]["model_version"] == committed
