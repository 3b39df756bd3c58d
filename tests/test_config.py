"""Settings: sane defaults, typed ``AUSCULT_*`` overrides, and a complete preprocessing record."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import config
import utils
from auscult import synthetic
from auscult.errors import AuscultError
from config import ENV_PREFIX, PROJECT_ROOT, Settings, get_settings, settings_from_env


def test_defaults_describe_the_front_end_and_the_project_layout():
    s = Settings()
    assert s.sample_rate == 8000
    assert 0 < s.band_low_hz < s.band_high_hz < 1000  # PhysioNet 2016 holds nothing above 1 kHz
    assert s.mel_fmax <= s.band_high_hz < s.sample_rate / 2
    assert s.win_length <= s.n_fft
    assert s.window_frames == 200
    assert s.window_hop_frames == 100
    assert s.min_duration_s < s.window_s  # a short recording is padded, not refused
    assert 0 < s.min_quality < 1
    assert s.analyzer_host == "127.0.0.1"
    assert s.api_host == "127.0.0.1"
    assert s.project_root == PROJECT_ROOT
    assert s.data_dir == PROJECT_ROOT.parent / "shared" / "data" / "physionet2016"


def test_runtime_paths_follow_the_work_dir(settings, tmp_path):
    for path in (settings.db_path, settings.inbox_dir, settings.uploads_dir, settings.cache_dir):
        assert path.is_relative_to(tmp_path / "work")
    assert settings.tflite_path.parent == settings.models_dir
    assert settings.metadata_path.name == "metadata.json"


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().sample_rate = 16000  # type: ignore[misc]


def test_no_environment_gives_the_defaults():
    assert settings_from_env({}) == Settings()


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("SAMPLE_RATE", "16000", 16000),
        ("ANALYZER_PORT", " 9000 ", 9000),
        ("MIN_QUALITY", "0.5", 0.5),
        ("BAND_HIGH_HZ", "900", 900.0),
        ("MODEL_NAME", "auscult_small", "auscult_small"),
        ("LAN_IP", "192.168.1.20", "192.168.1.20"),
    ],
)
def test_overrides_take_the_type_of_the_default(name, raw, expected):
    s = settings_from_env({ENV_PREFIX + name: raw})
    value = getattr(s, name.lower())
    assert value == expected
    assert type(value) is type(getattr(Settings(), name.lower()))


def test_path_overrides_become_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = settings_from_env({"AUSCULT_DATA_DIR": "physionet", "AUSCULT_WORK_DIR": "~/auscult"})
    assert s.data_dir == tmp_path / "physionet"
    assert isinstance(s.data_dir, Path)
    assert s.data_dir.is_absolute()
    assert s.work_dir == Path("~/auscult").expanduser()


def test_empty_values_and_unknown_names_are_ignored():
    s = settings_from_env({"AUSCULT_SAMPLE_RATE": "", "AUSCULT_NOT_A_SETTING": "1", "HOME": "/"})
    assert s == Settings()


@pytest.mark.parametrize(
    ("name", "raw", "kind"),
    [
        ("SAMPLE_RATE", "eight thousand", "int"),
        ("HOP_LENGTH", "1.5", "int"),
        ("TOP_DB", "-", "float"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_type(name, raw, kind):
    with pytest.raises(ValueError, match=f"AUSCULT_{name}='{raw}' is not a valid {kind}"):
        settings_from_env({ENV_PREFIX + name: raw})


def test_get_settings_reads_the_environment_once(monkeypatch):
    get_settings.cache_clear()
    try:
        monkeypatch.setenv("AUSCULT_ANALYZER_PORT", "8600")
        first = get_settings()
        monkeypatch.setenv("AUSCULT_ANALYZER_PORT", "8700")
        assert get_settings() is first
        assert first.analyzer_port == 8600
        get_settings.cache_clear()
        assert get_settings().analyzer_port == 8700
    finally:
        monkeypatch.delenv("AUSCULT_ANALYZER_PORT")
        get_settings.cache_clear()


def _perturbed(value: object) -> list[object]:
    """Other values of a numeric setting to probe with, nearest first; none for the rest."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return []
    if isinstance(value, int):
        return [value + max(1, value // 8), 2 * value, value // 2]
    return [value * 0.9]  # down: band_high_hz must stay below band_rate / 2


def test_preprocessing_lists_every_constant_that_changes_model_input():
    """A model trained under other front-end constants is refused by comparing this record
    (see runner.check_preprocessing), so every setting that moves model input must be in it."""
    base = Settings()
    rec = utils.Recording(synthetic.heart_sound(10.0, 8000, seed=4), 8000, 1)
    reference = utils.model_input(rec, base)

    influential = set()
    for field in dataclasses.fields(Settings):
        for changed in _perturbed(getattr(base, field.name)):
            try:
                other = utils.model_input(rec, dataclasses.replace(base, **{field.name: changed}))
            except (AuscultError, ValueError):  # a value unusable alone (a rate splitting the
                continue  # log-mel's windows, a band above Nyquist): try the next one
            same = other.windows.shape == reference.windows.shape and np.array_equal(
                other.windows, reference.windows
            )
            if not same:
                influential.add(field.name)
                break

    recorded = base.preprocessing()
    assert influential <= set(recorded), (
        f"missing from preprocessing(): {influential - set(recorded)}"
    )
    probe_works = {"sample_rate", "log_mel_rate", "n_mels", "hop_length", "window_s"}
    assert probe_works <= influential


def test_preprocessing_is_plain_json_with_the_settings_values():
    s = Settings()
    recorded = s.preprocessing()
    assert json.loads(json.dumps(recorded)) == recorded
    assert all(recorded[name] == getattr(s, name) for name in recorded)


def test_module_exports_its_public_names():
    assert set(config.__all__) >= {"Settings", "get_settings", "PROJECT_ROOT", "ENV_PREFIX"}
