"""The ingest store: idempotent on (device_id, seq), rejects by reason, rollups, alarms, online state."""

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.contracts import Channel, Event, Telemetry, encode, topic_for
from edgefleet.server.db import transaction
from edgefleet.server.db.models import Alarm, Device, EventRow, Organization, TelemetryHourly
from edgefleet.server.ingest import IngestStore, Received
from edgefleet.server.services import alarms, retention
from tests.server import seed


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.needs("postgres"))])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """The same store tests on SQLite and on PostgreSQL (whose bulk insert takes another path)."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_database").url
    else:
        url = f"sqlite:///{tmp_path / 'ingest.db'}"
    with seed.organization_db(url, ("m1", "m2")) as factory:
        yield factory


def _count(sessions: sessionmaker[Session], model: type[EventRow] | type[Alarm]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_duplicates_and_replays_are_stored_once(sessions: sessionmaker[Session]) -> None:
    store = IngestStore(sessions)
    first = seed.anomaly("m1", seq=1)
    result = seed.ingest(store, first, first, seed.anomaly("m1", seq=2))  # a repeat inside the batch
    assert result.stored == {"event": 2} and result.duplicates == 1
    replay = seed.ingest(store, first, seed.anomaly("m1", seq=2), seed.anomaly("m2", seq=1))
    assert replay.stored == {"event": 1} and replay.duplicates == 2  # m2/1 is a different device
    assert _count(sessions, EventRow) == 3


def test_rejects_are_counted_by_reason_and_do_not_stop_valid_messages(
    sessions: sessionmaker[Session],
) -> None:
    seen: list[str] = []
    store = IngestStore(sessions, on_reject=lambda reason, _t, _d: seen.append(reason))
    good = seed.anomaly("m1", seq=5)
    batch = [
        Received(topic_for("m2", Channel.EVENT), encode(good)),  # m1's payload on m2's topic
        Received(topic_for("m1", Channel.EVENT), b"{not json"),
        Received("ef/v1/m1/bogus", encode(good)),
        Received(topic_for("ghost", Channel.EVENT), encode(seed.anomaly("ghost", seq=1))),
        Received(
            topic_for("m1", Channel.EVENT), json.dumps({**json.loads(encode(good)), "schema": 99}).encode()
        ),
        Received(topic_for("m1", Channel.EVENT), encode(good)),
    ]
    result = store.write(batch)
    assert result.rejected == {
        "device_mismatch": 1,
        "invalid": 1,
        "topic": 1,
        "unknown_device": 1,
        "schema_version": 1,
    }
    assert seen.count("invalid") == 1
    assert result.stored == {"event": 1}


def test_revoked_devices_are_rejected(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        device = session.get(Device, "m2")
        assert device is not None
        device.revoked_at = datetime.now(UTC)
    assert seed.ingest(IngestStore(sessions), seed.anomaly("m2")).rejected == {"revoked_device": 1}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    topic=st.one_of(st.sampled_from([topic_for("m1", c) for c in Channel]), st.text(max_size=40)),
    payload=st.one_of(
        st.binary(max_size=300),
        st.dictionaries(st.text(max_size=10), st.one_of(st.integers(), st.text(max_size=10), st.none())).map(
            lambda d: json.dumps(d).encode()
        ),
    ),
)
def test_malformed_payloads_never_crash_ingest(
    sessions: sessionmaker[Session], topic: str, payload: bytes
) -> None:
    store = IngestStore(sessions)
    valid = seed.anomaly("m1")
    result = store.write([Received(topic, payload), seed.received(valid)])
    assert sum(result.rejected.values()) >= 1 or topic.startswith("ef/v1/m1/")
    assert result.stored.get("event") == 1


def test_telemetry_rolls_up_per_device_and_hour(sessions: sessionmaker[Session]) -> None:
    store = IngestStore(sessions)
    hour = datetime(2026, 1, 1, 10, tzinfo=UTC)
    messages = [
        seed.telemetry("m1", 1, anomaly_rate=0.1, ts=hour + timedelta(minutes=5)),
        seed.telemetry("m1", 2, anomaly_rate=0.3, ts=hour + timedelta(minutes=35)),
        seed.telemetry("m1", 3, anomaly_rate=0.0, ts=hour + timedelta(hours=1, minutes=1)),
    ]
    seed.ingest(store, *messages[:2])
    seed.ingest(store, *messages)  # replayed rows must not count twice
    with sessions() as session:
        rows = session.scalars(select(TelemetryHourly).order_by(TelemetryHourly.hour)).all()
        assert [(r.hour, r.samples, r.windows) for r in rows] == [
            (hour, 2, 200),
            (hour + timedelta(hours=1), 1, 100),
        ]
        assert rows[0].anomalous_windows == pytest.approx(40.0)
        assert rows[0].score_max == pytest.approx(0.8)


def test_one_alarm_per_device_and_kind_and_events_attach(sessions: sessionmaker[Session]) -> None:
    store = IngestStore(sessions, alarm_cooldown_s=3600)
    opened = seed.ingest(store, seed.anomaly("m1"), seed.anomaly("m1"))
    seed.ingest(store, seed.anomaly("m1"), seed.anomaly("m2"))
    with sessions() as session:
        open_alarms = session.scalars(select(Alarm).order_by(Alarm.device_id)).all()
        assert [(a.device_id, a.event_count) for a in open_alarms] == [("m1", 3), ("m2", 1)]
        attached = session.scalars(select(EventRow.alarm_id).where(EventRow.device_id == "m1")).all()
        assert set(attached) == {open_alarms[0].id}
    alarm_notes = [n for n in opened.notifications if n[1] == "alarm"]
    assert len(alarm_notes) == 1 and alarm_notes[0][2]["change"] == "opened" and alarm_notes[0][2]["notify"]


def test_alarm_clears_after_normal_for_long_enough_and_cooldown_mutes(
    sessions: sessionmaker[Session],
) -> None:
    store = IngestStore(sessions, alarm_cooldown_s=3600)
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    seed.ingest(store, seed.anomaly("m1", ts=t0))
    seed.ingest(store, seed.anomaly("m1", active=False, ts=t0 + timedelta(minutes=1)))
    later = datetime.now(UTC) + timedelta(seconds=61)  # normal since receipt, by the server's clock
    with transaction(sessions) as session:
        assert alarms.auto_clear(session, clear_after_s=3600, now=later) == []  # not normal long enough
        cleared = alarms.auto_clear(session, clear_after_s=60, now=later)
        assert [a.clear_reason for a in cleared] == ["auto"]
    again = seed.ingest(store, seed.anomaly("m1"))  # flapping: a new alarm, but no new notification
    notes = [n[2] for n in again.notifications if n[1] == "alarm"]
    assert notes[0]["change"] == "opened" and notes[0]["notify"] is False
    assert _count(sessions, Alarm) == 2


def test_an_active_event_resets_the_normal_clock(sessions: sessionmaker[Session]) -> None:
    store = IngestStore(sessions)
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    seed.ingest(store, seed.anomaly("m1", ts=t0), seed.anomaly("m1", active=False, ts=t0))
    seed.ingest(store, seed.anomaly("m1", ts=t0 + timedelta(minutes=2)))
    with transaction(sessions) as session:
        assert alarms.auto_clear(session, clear_after_s=60) == []


def test_status_and_last_will_update_online_state(sessions: sessionmaker[Session]) -> None:
    store = IngestStore(sessions)
    online = seed.ingest(store, seed.status("m1", "online"))
    assert [n[2]["online"] for n in online.notifications] == [True]
    with sessions() as session:
        device = session.get(Device, "m1")
        assert device is not None and device.online and device.firmware_version == "1.0.0"
        assert device.last_seen is not None
    seed.ingest(store, seed.status("m1", "offline"))
    with sessions() as session:
        device = session.get(Device, "m1")
        assert device is not None and not device.online


def test_last_seen_is_written_at_most_once_a_second_per_device(sessions: sessionmaker[Session]) -> None:
    def at(store: IngestStore, seq: int, received_at: datetime) -> None:
        event = seed.anomaly("m1", seq=seq)
        store.write([Received(topic_for("m1", Channel.EVENT), encode(event), received_at=received_at)])

    def last_seen() -> datetime | None:
        with sessions() as session:
            device = session.get(Device, "m1")
            assert device is not None
            return device.last_seen.replace(tzinfo=UTC) if device.last_seen else None

    store = IngestStore(sessions)
    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    at(store, 1, t0)
    assert last_seen() == t0
    at(store, 2, t0 + timedelta(seconds=0.5))
    assert last_seen() == t0  # within the resolution: no UPDATE
    at(store, 3, t0 + timedelta(seconds=1.2))
    assert last_seen() == t0 + timedelta(seconds=1.2)
    restarted = IngestStore(sessions)  # a new process knows nothing of what was written
    at(restarted, 4, t0 + timedelta(seconds=1.4))
    assert last_seen() == t0 + timedelta(seconds=1.4)


def test_retention_deletes_old_raw_rows_but_keeps_rollups(sessions: sessionmaker[Session]) -> None:
    """Old by the server's receive time (device times agree here; see test_device_time.py)."""
    store = IngestStore(sessions)
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=40), now - timedelta(days=1)
    messages: list[Event | Telemetry] = [
        seed.anomaly("m1", ts=old),
        seed.anomaly("m1", ts=recent),
        seed.telemetry("m1", 1, ts=old),
        seed.telemetry("m1", 2, ts=recent),
    ]
    for message in messages:
        store.write([replace(seed.received(message), received_at=message.ts)])
    with transaction(sessions) as session:
        purged = retention.purge_expired(session)  # defaults: events 365 days, telemetry 30 days
    assert (purged.events, purged.telemetry) == (0, 1)
    with transaction(sessions) as session:
        for org in session.scalars(select(Organization)):
            org.event_retention_days = 7
    with transaction(sessions) as session:
        assert retention.purge_expired(session).events == 1
    assert _count(sessions, EventRow) == 1
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(TelemetryHourly)) == 2
