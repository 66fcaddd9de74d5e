from pathlib import Path

import pytest

from edgefleet.edge.errors import OutboxError
from edgefleet.edge.outbox import Outbox


def payload(seq: int) -> bytes:
    return f'{{"seq": {seq}}}'.encode()


def test_seq_is_persisted_and_messages_survive_a_restart(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "d.sqlite")
    assert [box.put("t/e", "event", payload) for _ in range(3)] == [0, 1, 2]
    assert box.allocate_seq() == 3
    box.ack(1)
    box.close()
    box = Outbox(tmp_path / "d.sqlite")
    assert [m.seq for m in box.pending()] == [0, 2]
    assert box.pending()[1].payload == b'{"seq": 2}'
    assert box.put("t/e", "event", payload) == 4  # seq continues after the restart
    assert [m.seq for m in box.pending(after=0)] == [2, 4]
    box.close()


def test_full_outbox_drops_oldest_telemetry_first_then_events(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "d.sqlite", max_messages=4)
    box.put("t/t", "telemetry", payload)  # 0
    box.put("t/e", "event", payload)  # 1
    box.put("t/t", "telemetry", payload)  # 2
    box.put("t/e", "event", payload)  # 3
    box.put("t/e", "event", payload)  # 4: drops telemetry 0
    box.put("t/e", "event", payload)  # 5: drops telemetry 2
    assert [m.seq for m in box.pending()] == [1, 3, 4, 5]
    assert box.put("t/t", "telemetry", payload) is None  # full of events: the new telemetry is dropped
    assert box.put("t/e", "event", payload) == 6  # only now the oldest event goes
    assert [m.seq for m in box.pending()] == [3, 4, 5, 6]
    assert box.dropped() == {"telemetry": 3, "event": 1}
    assert box.depth() == 4
    box.close()
    assert Outbox(tmp_path / "d.sqlite", max_messages=4).dropped() == {"telemetry": 3, "event": 1}


def test_a_failing_payload_builder_leaves_nothing_behind(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "d.sqlite")

    def broken(seq: int) -> bytes:
        raise ValueError("boom")

    with pytest.raises(ValueError):
        box.put("t/e", "event", broken)
    assert box.depth() == 0
    assert box.put("t/e", "event", payload) == 0


def test_unusable_path_is_an_outbox_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutboxError, match="cannot open outbox"):
        Outbox(tmp_path / "file" / "d.sqlite")
    with pytest.raises(OutboxError):
        Outbox(tmp_path / "ok.sqlite", max_messages=0)


def test_ack_ranges_deletes_many_seqs_in_one_transaction(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "d.sqlite")
    for _ in range(600):
        box.put("t/e", "event", payload)
    statements: list[str] = []
    box._db.set_trace_callback(statements.append)
    assert box.ack_ranges([(0, 99), (100, 499), (550, 10**12)]) == 550
    box._db.set_trace_callback(None)
    assert [s for s in statements if s.startswith(("BEGIN", "COMMIT"))] == ["BEGIN IMMEDIATE", "COMMIT"]
    assert [m.seq for m in box.pending(limit=1000)] == list(range(500, 550))
    assert box.ack(500) == 1 and box.ack(500) == 0  # acknowledged twice: nothing more to delete
    assert box.ack_ranges([]) == 0
    assert [m.seq for m in box.get([501, 502, 9999, 3]) or []] == [501, 502]  # the stored ones only
    box.close()


def test_storage_errors_are_counted_never_raised_and_recovered_from(tmp_path: Path) -> None:
    """A write the database refuses (here: query_only, SQLite's read-only error; the real disk-full
    and I/O-error paths are in test_outbox_disk.py) loses that message, counted by reason."""
    box = Outbox(tmp_path / "d.sqlite", max_messages=3)
    assert [box.put("t/e", "event", payload) for _ in range(3)] == [0, 1, 2]
    assert box.put("t/t", "telemetry", payload) is None  # full: dropped (reason full)
    box._db.execute("PRAGMA query_only = ON")  # the disk stops taking writes
    assert box.put("t/e", "event", payload) is None
    assert box.put("t/t", "telemetry", payload) is None
    assert box.failing
    assert box.allocate_seq() == 3  # a status still gets a seq of its own (reserved in memory)
    assert box.ack_ranges([(0, 1)]) == 0  # not deleted yet, but never handed out again
    assert [m.seq for m in box.pending()] == [2]
    assert [m.seq for m in box.get([0, 1, 2]) or []] == [2]
    assert box.depth() == 3  # reads still work
    assert box.errors == 4
    assert box.drops() == {
        ("event", "write_error"): 1,
        ("telemetry", "full"): 1,
        ("telemetry", "write_error"): 1,
    }
    box._db.execute("PRAGMA query_only = OFF")  # space is back
    assert box.put("t/e", "event", payload) == 4  # seq 3 went to the status: never reused
    assert not box.failing
    assert [m.seq for m in box.pending()] == [2, 4]  # the acknowledged ones were deleted with it
    box.close()
    box = Outbox(tmp_path / "d.sqlite", max_messages=3)  # the counts were written once possible
    assert box.errors == 4
    assert box.dropped() == {"event": 1, "telemetry": 2}
    assert box.put("t/e", "event", payload) == 5
    box.close()


def test_storage_errors_are_logged_rate_limited(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    box = Outbox(tmp_path / "d.sqlite", error_log_interval_s=3600)
    box._db.execute("PRAGMA query_only = ON")
    with caplog.at_level("WARNING", logger="edgefleet.edge.outbox"):
        for _ in range(50):
            box.put("t/e", "event", payload)
        box._db.execute("PRAGMA query_only = OFF")
        box.put("t/e", "event", payload)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "storage error" in messages[0] and "readonly" in messages[0]
    assert "writable again after 50 storage errors" in messages[1]
    box.close()
