"""Dataset reader and splits: labels as published, records never on both sides."""

from __future__ import annotations

from pathlib import Path

import pytest

from auscult.datasets import LabelledRecord, lodo_folds, read_physionet, split_records
from auscult.errors import AuscultError


def _fake_physionet(root: Path) -> None:
    for db, rows in {
        "a": [("a0001", 1), ("a0002", -1)],
        "b": [("b0001", -1), ("b0002", 1)],
    }.items():
        folder = root / f"training-{db}"
        folder.mkdir(parents=True)
        (folder / "REFERENCE.csv").write_text("".join(f"{n},{label}\n" for n, label in rows))
        for name, _ in rows:
            suffix = ".wav" if name.endswith("1") else ".flac"
            (folder / f"{name}{suffix}").write_bytes(b"")


def test_reader_maps_official_labels_and_accepts_wav_and_flac(tmp_path):
    _fake_physionet(tmp_path)
    records = {r.name: r for r in read_physionet(tmp_path)}
    assert records["a0001"].label == 1
    assert records["a0002"].label == 0
    assert records["a0001"].path.suffix == ".wav"
    assert records["a0002"].path.suffix == ".flac"
    assert records["b0002"].database == "b"


def test_reader_explains_a_missing_data_folder(tmp_path):
    with pytest.raises(AuscultError, match="no PhysioNet 2016 data found"):
        read_physionet(tmp_path)


def _records(n_per_stratum: int = 20) -> list[LabelledRecord]:
    return [
        LabelledRecord(f"{db}{label}{i:03d}", db, Path(f"/x/{db}{label}{i}.wav"), label)
        for db in "abc"
        for label in (0, 1)
        for i in range(n_per_stratum)
    ]


def test_split_is_by_record_disjoint_complete_and_stratified():
    records = _records()
    train, val, test = split_records(records, (0.7, 0.15, 0.15), seed=42)
    names = [{r.name for r in part} for part in (train, val, test)]
    assert not (names[0] & names[1])
    assert not (names[0] & names[2])
    assert not (names[1] & names[2])
    assert sum(len(n) for n in names) == len(records)
    for part in (val, test):
        assert {(r.database, r.label) for r in part} == {
            (db, lab) for db in "abc" for lab in (0, 1)
        }


def test_split_is_reproducible_with_its_seed_and_changes_with_another():
    records = _records()
    first = split_records(records, (0.8, 0.2), seed=7)
    assert first == split_records(records, (0.8, 0.2), seed=7)
    assert first != split_records(records, (0.8, 0.2), seed=8)


def test_split_fractions_must_sum_to_one():
    with pytest.raises(ValueError, match="must sum to 1"):
        split_records(_records(), (0.5, 0.2))


def test_lodo_holds_out_each_database_once():
    folds = lodo_folds(_records(3))
    assert [db for db, _, _ in folds] == ["a", "b", "c"]
    for db, train, test in folds:
        assert {r.database for r in test} == {db}
        assert db not in {r.database for r in train}


@pytest.mark.data
def test_shared_copy_has_the_documented_counts():
    from config import get_settings

    root = get_settings().data_dir
    if not root.exists():
        pytest.skip(f"PhysioNet data not found at {root}")
    records = read_physionet(root)
    counts = {
        db: tuple(sum(1 for r in records if r.database == db and r.label == lab) for lab in (0, 1))
        for db in "abcdef"
    }
    assert counts == {
        "a": (99, 248),
        "b": (328, 88),
        "c": (6, 20),
        "d": (23, 24),
        "e": (1664, 156),
        "f": (68, 29),
    }
