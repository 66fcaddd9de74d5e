"""Server time is the authority: retention and alarm timing by the server's clock; device time is data,
stored with `clock_synced` and flagged when implausible (far future, far past)."""

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.contracts import Event, Telemetry
from edgefleet.server import create_app
from edgefleet.server.context import ServerContext
from edgefleet.server.db import transaction
from edgefleet.server.db.models import Alarm, EventRow, TelemetryRow
from edgefleet.server.ingest import IngestStore
from edgefleet.server.ingest.writer import BatchWriter
from edgefleet.server.metrics import Metrics
from edgefleet.server.services import alarms, retention
from tests.server import seed
from tests.server.conftest import make_settings, sign_up

YEAR_AGO = timedelta(days=400)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.needs("postgres"))])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_database").url
    else:
        url = f"sqlite:///{tmp_path / 'time.db'}"
    with seed.organization_db(url, ("m1", "m2")) as factory:
        yield factory


def critical(device_id: str, seq: int, ts: datetime, active: bool = True, synced: bool = True) -> Event:
    return Event.model_validate(
        {
            **seed.anomaly(device_id, seq=seq, active=active, ts=ts).model_dump(),
            "severity": "critical",
            "clock_synced": synced,
        }
    )


def test_a_device_400_days_behind_keeps_its_events_and_its_alarm(sessions: sessionmaker[Session]) -> None:
    """The finding: retention deleted everything such a device sent and its critical alarm cleared
    on the next pass (2-6 s) instead of after ALARM_CLEAR_AFTER_S of normal (300 s)."""
    store = IngestStore(sessions)
    wrong = datetime.now(UTC) - YEAR_AGO
    seed.ingest(store, critical("m1", 1, wrong), seed.telemetry("m1", 1, ts=wrong))
    seed.ingest(store, critical("m1", 2, wrong + timedelta(seconds=5), active=False))
    with transaction(sessions) as session:
        assert retention.purge_expired(session) == retention.Purged(0, 0)  # 365 / 30 days: by receipt
        assert alarms.auto_clear(session, 300.0) == []
        assert alarms.auto_clear(session, 300.0, now=datetime.now(UTC) + timedelta(seconds=290)) == []
    with sessions() as session:
        [alarm] = session.scalars(select(Alarm)).all()
        assert alarm.severity == "critical" and alarm.normal_since is not None
        assert abs((alarm.normal_since - datetime.now(UTC)).total_seconds()) < 60  # server time
        assert alarm.opened_at == wrong  # device time, for display
        flags = session.execute(select(EventRow.seq, EventRow.time_flag, EventRow.clock_synced)).all()
        assert sorted(flags) == [(1, "past", True), (2, "past", True)]
    with transaction(sessions) as session:
        later = datetime.now(UTC) + timedelta(seconds=301)
        assert [a.id for a in alarms.auto_clear(session, 300.0, now=later)] == [alarm.id]


def test_retention_deletes_by_receive_time_even_when_the_device_says_it_is_new(
    sessions: sessionmaker[Session],
) -> None:
    """A device clock a year ahead must not keep its rows forever."""
    store = IngestStore(sessions)
    received = datetime.now(UTC) - timedelta(days=40)
    ahead = received + timedelta(days=365)
    for message in (seed.anomaly("m2", seq=1, ts=ahead), seed.telemetry("m2", 1, ts=ahead)):
        store.write([replace(seed.received(message), received_at=received)])
    with transaction(sessions) as session:
        assert retention.purge_expired(session) == retention.Purged(0, 1)  # telemetry: 30 days
    with sessions() as session:
        assert session.scalar(select(EventRow.time_flag)) == "future"


@pytest.mark.parametrize(
    ("offset", "flag"),
    [
        (timedelta(minutes=4), None),
        (timedelta(minutes=6), "future"),
        (-timedelta(hours=23), None),
        (-timedelta(hours=25), "past"),
    ],
)
def test_implausible_device_times_are_flagged(
    sessions: sessionmaker[Session], offset: timedelta, flag: str | None
) -> None:
    store = IngestStore(sessions)
    now = datetime.now(UTC)
    result = seed.ingest(
        store, seed.anomaly("m1", seq=1, ts=now + offset), seed.telemetry("m1", 1, ts=now + offset)
    )
    with sessions() as session:
        assert session.scalar(select(EventRow.time_flag)) == flag
        assert session.scalar(select(TelemetryRow.time_flag)) == flag
    assert result.device_time == ({flag: 2} if flag else {})


def test_clock_synced_is_stored_and_unsynced_rows_are_counted(sessions: sessionmaker[Session]) -> None:
    metrics = Metrics()
    writer = BatchWriter(IngestStore(sessions), metrics)
    now = datetime.now(UTC)
    unsynced_telemetry = Telemetry.model_validate(
        {**seed.telemetry("m1", 7).model_dump(), "clock_synced": False}
    )
    for message in (
        critical("m1", 1, now, synced=False),
        critical("m1", 2, now - YEAR_AGO, synced=False),
        unsynced_telemetry,
        seed.anomaly("m2", seq=1, ts=now),
    ):
        writer.put(seed.received(message))
    writer.start()
    writer.stop()
    with sessions() as session:
        assert dict(
            session.execute(
                select(EventRow.seq, EventRow.clock_synced).where(EventRow.device_id == "m1")
            ).all()
        ) == {
            1: False,
            2: False,
        }
        assert session.scalar(select(TelemetryRow.clock_synced)) is False

    def count(flag: str) -> float | None:
        return metrics.registry.get_sample_value("edgefleet_ingest_device_time_total", {"flag": flag})

    assert (count("unsynced"), count("past"), count("future")) == (3.0, 1.0, None)


def test_the_running_server_keeps_the_alarm_open_and_the_api_shows_the_flags(tmp_path: Path) -> None:
    """The real maintenance loop (auto-clear every 0.2 s, retention every 0.5 s) for 3 s."""
    settings = make_settings(
        tmp_path, alarm_check_interval_s=0.2, alarm_clear_after_s=300.0, retention_interval_s=0.5
    )
    app = create_app(settings)
    with TestClient(app) as client:
        owner = sign_up(client, "ann@example.com")
        assert (
            client.post("/api/v1/devices", json={"id": "press-1"}, headers=owner.headers).status_code == 201
        )
        context: ServerContext = app.state.edgefleet
        store = IngestStore(context.sessions)
        wrong = datetime.now(UTC) - YEAR_AGO
        seed.ingest(
            store,
            critical("press-1", 1, wrong),
            seed.telemetry("press-1", 1, ts=wrong),
            critical("press-1", 2, wrong + timedelta(seconds=2), active=False),
        )
        time.sleep(3.0)
        [alarm] = client.get("/api/v1/alarms", params={"state": "open"}, headers=owner.headers).json()
        assert alarm["severity"] == "critical" and alarm["normal_since"] is not None
        events = client.get("/api/v1/events", params={"device_id": "press-1"}, headers=owner.headers).json()
        assert [(e["seq"], e["time_flag"], e["clock_synced"]) for e in events["items"]] == [
            (2, "past", True),
            (1, "past", True),
        ]
        [telemetry] = client.get("/api/v1/devices/press-1/telemetry", headers=owner.headers).json()
        assert telemetry["time_flag"] == "past" and telemetry["received_at"] > telemetry["ts"]
