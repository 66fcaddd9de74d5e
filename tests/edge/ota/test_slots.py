"""The slot store: atomic files, the journal, integrity checks of what a slot holds."""

import json
from pathlib import Path

import pytest

from edgefleet.contracts import read_package
from edgefleet.edge.ota.errors import SlotError
from edgefleet.edge.ota.slots import MAX_ANSWERS, Answer, OtaJournal, SlotStore, atomic_write
from tests.edge.ota.conftest import Models


def test_a_fresh_store_is_on_the_factory_model(tmp_path: Path) -> None:
    store = SlotStore(tmp_path / "ota")
    journal = store.load()
    assert (journal.active, journal.previous, journal.pending, journal.job) == (None, None, False, None)
    assert (tmp_path / "ota/A").is_dir() and (tmp_path / "ota/B").is_dir()
    assert journal.inactive_slot() == "A"


def test_the_journal_round_trips_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = SlotStore(tmp_path)
    journal = OtaJournal(active="B", previous="A", pending=True, pending_boots=1)
    store.save(journal)
    assert store.load() == journal
    assert store.load().inactive_slot() == "A"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A", "B", "state.json"]


def test_a_corrupt_journal_falls_back_to_the_factory_model(tmp_path: Path) -> None:
    store = SlotStore(tmp_path)
    store.save(OtaJournal(active="A"))
    store.state_path.write_text('{"active": "A", "pend', encoding="utf-8")
    assert store.load().active is None
    assert (tmp_path / "state.corrupt").exists()
    store.state_path.write_text(json.dumps({"active": "C"}), encoding="utf-8")
    assert store.load().active is None


def test_atomic_write_replaces_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    atomic_write(path, b"old content")
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"
    assert not (tmp_path / "f.bin.tmp").exists()


def test_a_written_slot_loads_and_a_damaged_one_is_refused(tmp_path: Path, models: Models) -> None:
    store = SlotStore(tmp_path)
    package = read_package(models.v2_package)
    info = store.write_slot("B", package, "ab" * 32)
    assert (info.model_id, info.model_version, info.confirmed) == ("test-ae", "0.0.2", False)
    assert (tmp_path / "B/package.sha256").read_text().strip() == "ab" * 32
    assert store.check_slot("B", info) is None
    assert store.load_slot("B", info).card.model_version == "0.0.2"
    model = tmp_path / "B/model.tflite"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    assert "model.tflite" in (store.check_slot("B", info) or "")
    with pytest.raises(SlotError) as err:
        store.load_slot("B", info)
    assert err.value.reason == "slot_corrupt"
    data[-1] ^= 0xFF
    model.write_bytes(bytes(data))
    assert store.check_slot("B", info) is None
    (tmp_path / "B/model_card.json").unlink()
    assert "cannot read model_card.json" in (store.check_slot("B", info) or "")


def test_answers_are_bounded_newest_kept() -> None:
    journal = OtaJournal()
    for i in range(MAX_ANSWERS + 5):
        journal.remember(f"c{i}", Answer(state="UPDATED"))
    assert len(journal.answered) == MAX_ANSWERS
    assert "c0" not in journal.answered and f"c{MAX_ANSWERS + 4}" in journal.answered
