"""What one alarm's page, the fleet's alarm strip and a camera's view read, on a real (SQLite)
database fed through the real ingest store; the presence chart and the navigation's 'you are here'."""

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.contracts import Event
from edgefleet.dashboard.charts import presence_chart
from edgefleet.dashboard.layout import NAV, current
from edgefleet.dashboard.pages.alarm_views import load_detail, open_alarms
from edgefleet.dashboard.pages.camera_view import presence
from edgefleet.server.db import make_engine, make_sessionmaker, upgrade
from edgefleet.server.db.models import Alarm, Device, Organization
from edgefleet.server.ingest import IngestStore
from tests.server import seed

NOW = datetime.now(UTC).replace(microsecond=0)
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0 not really a jpeg").decode()


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'views.db'}")
    upgrade(engine)
    return make_sessionmaker(engine)


def _org(sessions: sessionmaker[Session], name: str, *devices: tuple[str, str]) -> int:
    with sessions() as session, session.begin():
        org = Organization(name=name)
        session.add(org)
        session.flush()
        session.add_all(Device(id=i, org_id=org.id, name=f"{i} name", kind=kind) for i, kind in devices)
        return org.id


def _person(
    device_id: str, seq: int, hours_ago: float, active: bool, count: int = 1, thumb: bool = False
) -> Event:
    return Event(
        device_id=device_id, seq=seq, ts=NOW - timedelta(hours=hours_ago), kind="person", active=active,
        severity="info", score=0.9, person_count=count if active else 0,
        thumbnail_jpeg=JPEG if thumb else None,
    )  # fmt: skip


def test_a_cameras_presence_holds_each_count_until_the_cleared_event(sessions: sessionmaker[Session]) -> None:
    org = _org(sessions, "a", ("cam-1", "camera"))
    _org(sessions, "b", ("cam-b", "camera"))
    store = IngestStore(sessions)
    seed.ingest(
        store,
        _person("cam-1", 1, 8.0, True, count=3),  # before the range: 3 present when it starts
        _person("cam-1", 2, 5.0, False),
        _person("cam-1", 3, 2.0, True, count=2, thumb=True),
        _person("cam-1", 4, 1.0, False),
        _person("cam-1", 5, 0.5, True),
        _person("cam-b", 1, 0.2, True, count=9, thumb=True),  # another organization's camera
    )
    with sessions() as session:
        view = presence(session, org, "cam-1", NOW - timedelta(hours=6))
    assert view.before == 3
    assert [(round((NOW - t).total_seconds() / 3600, 1), n) for t, n in view.changes] == [
        (5.0, 0), (2.0, 2), (1.0, 0), (0.5, 1),
    ]  # fmt: skip
    assert view.now == 1 and view.thumbnail == JPEG
    assert view.last_seen == NOW - timedelta(hours=0.5)
    with sessions() as session:
        assert presence(session, org, "cam-b", NOW - timedelta(hours=6)).changes == []


def test_presence_chart_steps_from_the_start_to_the_end_of_the_range() -> None:
    start, end = NOW - timedelta(hours=6), NOW
    changes = [(NOW - timedelta(hours=7), 5), (NOW - timedelta(hours=2), 2), (NOW - timedelta(hours=1), 0)]
    option = presence_chart(changes, (start, end), before=1)
    points = option["series"][0]["data"]
    ms = [int(t.timestamp() * 1000) for t in (start, NOW - timedelta(hours=2), NOW - timedelta(hours=1), end)]
    assert points == [
        [ms[0], 1],
        [ms[1], 2],
        [ms[2], 0],
        [ms[3], 0],
    ]  # the change before the range is left out
    assert option["series"][0]["step"] == "end" and option["yAxis"]["minInterval"] == 1
    assert option["xAxis"]["axisLabel"]["hideOverlap"] is True


def test_one_alarms_page_and_the_strip_see_only_their_organization(sessions: sessionmaker[Session]) -> None:
    org = _org(sessions, "a", ("pump-1", "vibration"), ("fan-2", "vibration"))
    other = _org(sessions, "b", ("press-b", "vibration"))
    store = IngestStore(sessions)
    seed.ingest(store, seed.anomaly("pump-1"), seed.anomaly("fan-2"), seed.anomaly("press-b"))
    with sessions() as session, session.begin():
        alarms = {a.device_id: a for a in session.query(Alarm)}
        alarms["fan-2"].acked_at = NOW  # acknowledged: no longer in the strip
        ids = {device: alarm.id for device, alarm in alarms.items()}
    with sessions() as session:
        detail = load_detail(session, org, ids["pump-1"])
        assert detail is not None
        assert (detail.device_name, detail.device_kind, detail.alarm.kind) == (
            "pump-1 name",
            "vibration",
            "anomaly",
        )
        assert load_detail(session, org, ids["press-b"]) is None  # another organization's: as if none
        assert load_detail(session, org, 999_999) is None
        items, total = open_alarms(session, org, limit=3)
        assert total == 1 and [(i.alarm.device_id, i.device_name) for i in items] == [
            ("pump-1", "pump-1 name")
        ]
        assert open_alarms(session, other, limit=3)[1] == 1


def test_the_navigation_marks_the_section_of_the_page_shown() -> None:
    hrefs = [href for _, href, _ in NAV]
    assert hrefs[:2] == ["/", "/alarms"]  # what a technician needs first

    def here(path: str) -> list[str]:
        return [href for href in hrefs if current(path, href)]

    assert here("/") == ["/"]
    assert here("/devices/pump-1") == ["/"]  # a device is part of the fleet
    assert here("/devices/new") == ["/devices/new"]
    assert here("/alarms/12") == ["/alarms"]
    assert here("/rollouts/3") == ["/rollouts"]
