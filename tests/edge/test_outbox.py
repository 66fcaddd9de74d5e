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
