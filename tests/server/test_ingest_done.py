"""What a batch is done with (`WriteResult.done`), the seqs the ingest acknowledges on `ack`, and the
`Ack` messages built from them. On SQLite and PostgreSQL, without a broker."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.contracts import (
    MAX_ACK_RANGES,
    Ack,
    Channel,
    OtaState,
    ack_ranges,
    decode_topic,
    encode,
    topic_for,
)
from edgefleet.contracts.topics import DEVICE_ID_PATTERN
from edgefleet.server.db import transaction
from edgefleet.server.db.models import Device
from edgefleet.server.ingest import IngestStore, Received
from edgefleet.server.ingest.acks import ack_messages
from tests.server import seed
from tests.server.ack_kit import bad_event
from tests.server.window_samples import received as sample_received
from tests.server.window_samples import window_sample


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.needs("postgres"))])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_database").url
    else:
        url = f"sqlite:///{tmp_path / 'ingest.db'}"
    with seed.organization_db(url, ("d1", "d2", "d3")) as factory:
        yield factory


def _event(device_id: str, seq: int) -> Received:
    return seed.received(seed.anomaly(device_id, seq=seq))


def test_stored_duplicates_and_every_outbox_channel_are_done(sessions: sessionmaker[Session]) -> None:
    store = IngestStore(sessions)
    ota = OtaState(device_id="d1", seq=9, ts=datetime.now(UTC), state="DOWNLOADING", progress=0.5)
    batch = [
        _event("d1", 1),
        _event("d1", 2),
        _event("d1", 1),  # a repeat inside the batch
        seed.received(seed.telemetry("d1", 3)),
        sample_received(window_sample("d1", 4)),
        Received(topic_for("d1", Channel.OTA_STATE), encode(ota)),
        seed.received(seed.status("d1", seq=5)),  # status is not kept in an outbox: no ack
        _event("d2", 7),
    ]
    result = store.write(batch)
    assert {device: sorted(set(seqs)) for device, seqs in result.done.items()} == {
        "d1": [1, 2, 3, 4, 9],
        "d2": [7],
    }
    replay = store.write([_event("d1", 1), _event("d1", 2)])  # stored before: done, acked again
    assert replay.duplicates == 2 and replay.done == {"d1": [1, 2]}


def test_refused_bad_data_of_a_known_device_is_done_and_nothing_else(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        device = session.get(Device, "d3")
        assert device is not None
        device.revoked_at = datetime.now(UTC)
    store = IngestStore(sessions)
    topic = topic_for("d1", Channel.EVENT)
    batch = [
        Received(topic, bad_event("d1", 11)),  # invalid: done, resending cannot help
        Received(topic, encode(seed.anomaly("d2", seq=12))),  # d2's payload on d1's topic: d1's seq
        Received(topic_for("d1", Channel.TELEMETRY), b'{"seq": 13, "schema": 1}'),
        Received(topic, bad_event("d1", 14, schema=2, score=0.9)),  # a newer schema: kept for later
        Received(topic, b"{not json"),  # no seq to name
        Received(topic, json.dumps({"seq": -1}).encode()),
        Received(topic, json.dumps({"seq": True}).encode()),
        Received(topic, json.dumps([{"seq": 15}]).encode()),
        Received(topic, b"[" * 100_000),  # deeper than the JSON parser goes
        Received(topic_for("d1", Channel.STATUS), bad_event("d1", 16)),
        Received(topic_for("d1", Channel.CMD), bad_event("d1", 17)),
        Received("ef/v1/d1/nonsense", bad_event("d1", 18)),
        Received(topic_for("ghost", Channel.EVENT), bad_event("ghost", 19)),  # unknown device
        Received(topic_for("d3", Channel.EVENT), bad_event("d3", 20)),  # revoked
        Received(topic_for("d3", Channel.EVENT), encode(seed.anomaly("d3", seq=21))),  # revoked, valid
        _event("d1", 22),
    ]
    result = store.write(batch)
    assert result.done == {"d1": [11, 12, 13, 22]}
    assert sum(result.rejected.values()) == len(batch) - 1


def test_ack_messages_merge_ranges_per_device_and_split_long_ones() -> None:
    ts = datetime(2026, 12, 1, tzinfo=UTC)
    messages = ack_messages({"d1": [3, 1, 2, 7, 2], "d2": [5]}, ts)
    decoded = [decode_topic(topic, payload) for topic, payload in messages]
    assert [(address.topic, ack) for address, ack in decoded] == [
        ("ef/v1/d1/ack", Ack(device_id="d1", ts=ts, ranges=[(1, 3), (7, 7)])),
        ("ef/v1/d2/ack", Ack(device_id="d2", ts=ts, ranges=[(5, 5)])),
    ]
    every_other = list(range(0, 2 * (2 * MAX_ACK_RANGES + 10), 2))  # no two adjacent: one range each
    split = [decode_topic(topic, payload)[1] for topic, payload in ack_messages({"d1": every_other}, ts)]
    assert [len(ack.ranges) for ack in split if isinstance(ack, Ack)] == [MAX_ACK_RANGES, MAX_ACK_RANGES, 10]
    assert [seq for ack in split if isinstance(ack, Ack) for seq in ack.covers()] == every_other
    assert ack_messages({}) == []


@given(
    device_id=st.from_regex(DEVICE_ID_PATTERN, fullmatch=True),
    seqs=st.sets(st.integers(min_value=0, max_value=2**53), min_size=1, max_size=50),
    ts=st.datetimes(timezones=st.just(UTC)),
)
def test_ack_payloads_are_what_encode_writes(device_id: str, seqs: set[int], ts: datetime) -> None:
    [(topic, payload)] = ack_messages({device_id: seqs}, ts)
    assert topic == topic_for(device_id, Channel.ACK)
    assert payload == encode(Ack(device_id=device_id, ts=ts, ranges=ack_ranges(seqs)))
