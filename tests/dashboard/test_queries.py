"""The dashboard's read queries on a real (SQLite) database fed through the real ingest store."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.dashboard.queries import FleetQuery, alarm_stats, anomaly_rate_per_device, fleet_page
from edgefleet.server.db import make_engine, make_sessionmaker, upgrade
from edgefleet.server.db.models import Device, Organization
from edgefleet.server.ingest import IngestStore
from tests.server import seed


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    upgrade(engine)
    return make_sessionmaker(engine)


def _org(sessions: sessionmaker[Session], name: str, devices: int) -> int:
    with sessions() as session, session.begin():
        org = Organization(name=name)
        session.add(org)
        session.flush()
        for i in range(devices):
            kind = "camera" if i % 5 == 4 else "vibration"
            session.add(Device(id=f"{name}-{i:03d}", org_id=org.id, name=f"Machine {i}", kind=kind))
        return org.id


def test_fleet_page_filters_pages_and_puts_devices_in_alarm_first(sessions: sessionmaker[Session]) -> None:
    org = _org(sessions, "a", 60)
    _org(sessions, "b", 5)
    store = IngestStore(sessions)
    now = datetime.now(UTC)
    reports = [
        seed.telemetry("a-003", seq, ts=now - timedelta(minutes=130 - seq)).model_copy(
            update={"score_p95": float(seq)}
        )
        for seq in range(100, 130)
    ]
    seed.ingest(store, seed.anomaly("a-007"), *reports)
    with sessions() as session:
        first = fleet_page(session, org, FleetQuery(per_page=25))
        assert (first.total, first.pages, len(first.cards)) == (60, 3, 25)
        assert first.cards[0].id == "a-007" and first.cards[0].open_alarms == 1
        assert all(c.id.startswith("a-") for c in first.cards)  # never another organization's
        last = fleet_page(session, org, FleetQuery(per_page=25, page=99))  # clamped to the last page
        assert len(last.cards) == 10
        cameras = fleet_page(session, org, FleetQuery(kind="camera"))
        assert cameras.total == 12 and {c.kind for c in cameras.cards} == {"camera"}
        found = fleet_page(session, org, FleetQuery(search="MACHINE 3"))
        assert {c.id for c in found.cards} == {"a-003", *(f"a-{i:03d}" for i in range(30, 40))}
        alarmed = fleet_page(session, org, FleetQuery(state="alarm"))
        assert [c.id for c in alarmed.cards] == ["a-007"]
        spark = next(c for c in found.cards if c.id == "a-003").spark
        assert spark == [float(seq) for seq in range(106, 130)]  # the last 24 reports, oldest first


def test_alarm_stats_count_per_day_and_time_to_acknowledge(sessions: sessionmaker[Session]) -> None:
    org = _org(sessions, "s", 3)
    store = IngestStore(sessions)
    seed.ingest(store, seed.anomaly("s-000"), seed.anomaly("s-001"))
    now = datetime.now(UTC)
    with sessions() as session, session.begin():
        from edgefleet.server.db.models import Alarm

        alarm = session.query(Alarm).filter(Alarm.device_id == "s-000").one()
        alarm.acked_at = alarm.opened_at + timedelta(seconds=90)
    with sessions() as session:
        stats = alarm_stats(session, org, now - timedelta(days=1), now + timedelta(minutes=1))
    assert (stats.opened, stats.acknowledged) == (2, 1)
    assert stats.ack_seconds_median == pytest.approx(90, abs=1)
    assert sum(row["count"] for row in stats.per_day) == 2


def test_anomaly_rate_per_device_comes_from_the_rollups(sessions: sessionmaker[Session]) -> None:
    org = _org(sessions, "r", 2)
    store = IngestStore(sessions)
    seed.ingest(
        store, seed.telemetry("r-000", 1, anomaly_rate=0.25), seed.telemetry("r-001", 1, anomaly_rate=0.0)
    )
    with sessions() as session:
        rates = dict(anomaly_rate_per_device(session, org, datetime.now(UTC) - timedelta(hours=2)))
    assert rates == {"r-000": pytest.approx(0.25), "r-001": 0.0}
