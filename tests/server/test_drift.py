"""Drift monitoring through the real ingest store: limits, consecutive intervals, one alarm, auto-clear,
model versions, missing cards, device drift events, restarts; and the drift API."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.server.db import make_engine, make_sessionmaker, transaction, upgrade
from edgefleet.server.db.models import Alarm, DriftState, Organization, TelemetryRow
from edgefleet.server.ingest import IngestStore, WriteResult
from edgefleet.server.services import alarms, drift_queries
from edgefleet.server.services.drift import DriftLimits, card_reference
from tests.server import seed
from tests.server.conftest import sign_up
from tests.server.drift_helpers import CARD_STATS, INTERVAL, T0, add_model, drift_event, report

LIMITS = DriftLimits(drift=1.5, score_ratio=3.0, consecutive=3)
CLEAR_S = 300.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.needs("postgres"))])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[sessionmaker[Session], int, int]]:
    """Sessions, org A (devices m1, m2, registry model pump-ae 1.0.0 with score stats) and org B."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_database").url
    else:
        url = f"sqlite:///{tmp_path / 'drift.db'}"
    engine = make_engine(url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    with transaction(factory) as session:
        orgs = [Organization(name="A"), Organization(name="B")]
        session.add_all(orgs)
        session.flush()
        org_a, org_b = orgs[0].id, orgs[1].id
    seed.add_device(factory, org_a, "m1")
    seed.add_device(factory, org_a, "m2")
    add_model(factory, org_a)
    yield factory, org_a, org_b
    with transaction(factory) as session:
        session.execute(delete(Organization).where(Organization.id.in_([org_a, org_b])))
    engine.dispose()


def _store(sessions: sessionmaker[Session]) -> IngestStore:
    return IngestStore(sessions, drift_limits=LIMITS)


def _alarms(sessions: sessionmaker[Session], device_id: str = "m1") -> list[Alarm]:
    with sessions() as session:
        return list(session.scalars(select(Alarm).where(Alarm.device_id == device_id).order_by(Alarm.id)))


def _state(sessions: sessionmaker[Session], device_id: str = "m1") -> DriftState:
    with sessions() as session:
        state = session.get(DriftState, device_id)
        assert state is not None
        return state


def _opened(result: WriteResult) -> list[dict[str, object]]:
    return [d for _, t, d in result.notifications if t == "alarm" and d["change"] == "opened"]


def test_normal_telemetry_stays_quiet(world: tuple[sessionmaker[Session], int, int]) -> None:
    sessions, org_a, _ = world
    store = _store(sessions)
    for seq in range(1, 11):  # drift up to the limit (not above), p95 up to 3x the card's
        seed.ingest_on_time(store, report("m1", seq, drift=1.5 if seq % 2 else 0.4, p95=0.6))
    assert _alarms(sessions) == []
    state = _state(sessions)
    assert (state.consecutive, state.out_of_limit, state.seq) == (0, False, 10)
    assert state.p95_ratio == pytest.approx(3.0)
    with sessions() as session:
        [summary] = drift_queries.fleet_summary(session, org_a, LIMITS)
    assert (summary.device_id, summary.state, summary.reason, summary.alarm_id) == ("m1", "ok", None, None)


def test_drift_past_the_limit_for_n_intervals_opens_exactly_one_alarm(
    world: tuple[sessionmaker[Session], int, int],
) -> None:
    sessions, org_a, _ = world
    store = _store(sessions)
    for seq in (1, 2):
        assert _opened(seed.ingest_on_time(store, report("m1", seq, drift=2.4))) == []
    assert _alarms(sessions) == [] and _state(sessions).consecutive == 2
    third = seed.ingest_on_time(store, report("m1", 3, drift=2.4))
    [note] = _opened(third)
    assert (note["kind"], note["severity"], note["reason"], note["notify"]) == (
        "drift",
        "warning",
        "drift",
        True,
    )
    for seq in range(4, 8):
        assert _opened(seed.ingest_on_time(store, report("m1", seq, drift=2.6))) == []
    [alarm] = _alarms(sessions)
    assert (alarm.kind, alarm.severity, alarm.cleared_at, alarm.normal_since) == (
        "drift",
        "warning",
        None,
        None,
    )
    assert alarm.opened_at == T0 + 3 * INTERVAL and alarm.event_count == 5  # intervals 3..7
    assert _alarms(sessions, "m2") == []
    with sessions() as session:
        [summary] = drift_queries.fleet_summary(session, org_a, LIMITS, state="drifting")
    assert (summary.state, summary.reason, summary.alarm_id, summary.consecutive) == (
        "drifting",
        "drift",
        alarm.id,
        7,
    )
    assert summary.out_since == T0 + INTERVAL


def test_score_p95_against_the_card_opens_an_alarm_and_says_so(
    world: tuple[sessionmaker[Session], int, int],
) -> None:
    sessions, _, _ = world
    store = _store(sessions)
    results = [
        seed.ingest_on_time(store, report("m1", seq, drift=0.2, p95=0.7)) for seq in (1, 2, 3)
    ]  # 3.5x card
    [note] = _opened(results[-1])
    assert note["reason"] == "score_p95"
    assert _state(sessions).p95_ratio == pytest.approx(0.7 / CARD_STATS["p95"])
    seed.ingest_on_time(store, report("m1", 4, drift=2.0, p95=0.7))
    assert _state(sessions).reason == "drift+score_p95" and len(_alarms(sessions)) == 1


def test_recovery_marks_normal_and_auto_clear_clears_after_the_clear_time(
    world: tuple[sessionmaker[Session], int, int],
) -> None:
    sessions, _, _ = world
    store = _store(sessions)
    for seq in (1, 2, 3):
        seed.ingest_on_time(store, report("m1", seq, drift=3.0))
    seed.ingest_on_time(store, report("m1", 4, drift=0.5), report("m1", 5, drift=0.4))
    [alarm] = _alarms(sessions)
    assert alarm.normal_since == T0 + 4 * INTERVAL and _state(sessions).consecutive == 0
    with transaction(sessions) as session:  # not yet: normal for less than the clear time
        assert (
            alarms.auto_clear(session, CLEAR_S, now=T0 + 4 * INTERVAL + timedelta(seconds=CLEAR_S - 1)) == []
        )
    seed.ingest_on_time(store, report("m1", 6, drift=2.0))  # one relapse keeps it open and restarts "normal"
    assert _alarms(sessions)[0].normal_since is None
    seed.ingest_on_time(store, report("m1", 7, drift=0.5))
    with transaction(sessions) as session:
        cleared = alarms.auto_clear(session, CLEAR_S, now=T0 + 7 * INTERVAL + timedelta(seconds=CLEAR_S))
        assert [a.id for a in cleared] == [alarm.id]
    assert _alarms(sessions)[0].clear_reason == "auto"
    # a new run has to reach the count again before a second alarm opens
    for seq in (8, 9):
        seed.ingest_on_time(store, report("m1", seq, drift=2.5))
    assert len(_alarms(sessions)) == 1
    assert _opened(seed.ingest_on_time(store, report("m1", 10, drift=2.5)))
    assert [a.cleared_at is None for a in _alarms(sessions)] == [False, True]


def test_a_model_version_change_resets_the_count_and_series_are_per_version(
    world: tuple[sessionmaker[Session], int, int],
) -> None:
    sessions, org_a, _ = world
    add_model(sessions, org_a, "1.1.0", card={"score_stats": {**CARD_STATS, "p50": 0.3, "p95": 0.5}})
    store = _store(sessions)
    seed.ingest_on_time(store, report("m1", 1, drift=2.0), report("m1", 2, drift=2.0))
    seed.ingest(
        store, report("m1", 3, drift=2.0, version="1.1.0"), report("m1", 4, drift=2.0, version="1.1.0")
    )
    assert _alarms(sessions) == []
    assert (_state(sessions).model_version, _state(sessions).consecutive) == ("1.1.0", 2)
    assert _opened(seed.ingest_on_time(store, report("m1", 5, drift=2.0, version="1.1.0")))
    with sessions() as session:
        series = drift_queries.device_series(session, org_a, "m1", T0, T0 + timedelta(hours=1), limits=LIMITS)
    assert [(s.model_version, len(s.points)) for s in series] == [("1.0.0", 2), ("1.1.0", 3)]
    assert series[0].card_p95 == 0.2 and series[0].p95_limit == pytest.approx(0.6)
    assert (series[1].card_p50, series[1].card_p95, series[1].drift_limit) == (0.3, 0.5, 1.5)
    assert series[1].points[0].ts == T0 + 3 * INTERVAL and series[1].points[0].drift == 2.0


def test_series_never_include_another_organizations_rows(
    world: tuple[sessionmaker[Session], int, int],
) -> None:
    sessions, org_a, org_b = world
    seed.ingest(_store(sessions), report("m1", 1))
    with transaction(sessions) as session:  # kept from a deleted device whose id is in use again
        data = {"model_id": "pump-ae", "model_version": "6.6.6"}
        values = {"received_at": T0, "mode": "running", "uptime_s": 1.0, "interval_s": 60.0, "windows": 1}
        session.add(
            TelemetryRow(
                org_id=org_b,
                device_id="m1",
                seq=2,
                ts=T0 + 2 * INTERVAL,
                outbox_depth=0,
                drift=9.0,
                data=data,
                **values,
            )
        )
    hour = T0 + timedelta(hours=1)
    with sessions() as session:
        mine = drift_queries.device_series(session, org_a, "m1", T0, hour, limits=LIMITS)
        theirs = drift_queries.device_series(session, org_b, "m1", T0, hour, limits=LIMITS)
    assert [(s.model_version, len(s.points)) for s in mine] == [("1.0.0", 1)]
    assert [(s.model_version, s.card_p95) for s in theirs] == [("6.6.6", None)]


def test_a_missing_or_malformed_card_is_tolerated(world: tuple[sessionmaker[Session], int, int]) -> None:
    sessions, org_a, _ = world
    add_model(sessions, org_a, "0.9.0", card={"score_stats": {"p95": "high"}})
    store = _store(sessions)
    # unknown version 2.0.0 and malformed 0.9.0: p95 is not judged (no reference), drift still is
    for seq in (1, 2, 3):
        seed.ingest_on_time(store, report("m1", seq, drift=0.2, p95=5.0, version="2.0.0"))
        seed.ingest_on_time(store, report("m2", seq, drift=0.2, p95=5.0, version="0.9.0"))
    assert _alarms(sessions) == [] and _alarms(sessions, "m2") == []
    assert _state(sessions).p95_ratio is None
    for seq in (4, 5, 6):
        seed.ingest_on_time(store, report("m1", seq, drift=1.9, p95=None, version="2.0.0"))
    assert [a.kind for a in _alarms(sessions)] == ["drift"]
    assert card_reference(None) is None and card_reference({"score_stats": CARD_STATS}) is not None


def test_device_drift_events_do_not_open_a_second_alarm(
    world: tuple[sessionmaker[Session], int, int],
) -> None:
    sessions, _, _ = world
    store = _store(sessions)
    seed.ingest_on_time(store, drift_event("m1", 100))  # the device's own drift event: stored, no alarm
    assert _alarms(sessions) == []
    for seq in (1, 2):
        seed.ingest_on_time(store, report("m1", seq, drift=2.0))
    # the event and the third out-of-limit interval in one batch
    result = seed.ingest_on_time(
        store, drift_event("m1", 101), report("m1", 3, drift=2.0), drift_event("m1", 102)
    )
    assert result.stored == {"event": 2, "telemetry": 1}
    seed.ingest_on_time(store, report("m1", 4, drift=2.0), drift_event("m1", 103, active=False))
    assert [a.kind for a in _alarms(sessions)] == ["drift"]


def test_resends_late_intervals_restarts_and_unversioned_telemetry(
    world: tuple[sessionmaker[Session], int, int],
) -> None:
    sessions, _, _ = world
    store = _store(sessions)
    out = report("m1", 5, drift=2.0)
    result = seed.ingest_on_time(store, out, out)
    seed.ingest_on_time(store, out)  # a resend after a reconnect is stored once and counted once
    assert result.duplicates == 1 and _state(sessions).consecutive == 1
    seed.ingest_on_time(
        store, report("m1", 3, drift=2.0)
    )  # older than the latest judged: not part of the run
    assert (_state(sessions).consecutive, _state(sessions).seq) == (1, 5)
    restarted = _store(sessions)  # a new ingest process continues the count from the database
    seed.ingest(restarted, report("m1", 6, drift=2.0))
    assert _opened(seed.ingest(restarted, report("m1", 7, drift=2.0)))
    seed.ingest_on_time(store, seed.telemetry("m2", 1))  # no model version: not judged, no state
    with sessions() as session:
        assert session.get(DriftState, "m2") is None


# --- API --------------------------------------------------------------------------------------
def test_drift_api_summary_and_series_are_org_isolated(client: TestClient) -> None:
    owner = sign_up(client, "owner@drift.example", "Drift plant")
    other = sign_up(client, "other@drift.example", "Elsewhere")
    sessions = client.app.state.edgefleet.sessions  # type: ignore[attr-defined]
    seed.add_device(sessions, owner.org_id, "d-1")
    seed.add_device(sessions, owner.org_id, "d-2")
    add_model(sessions, owner.org_id)
    store = IngestStore(sessions)  # the default limits, as in the app's settings
    seed.ingest_on_time(store, *(report("d-1", seq, drift=2.2) for seq in range(1, 5)))
    seed.ingest_on_time(store, *(report("d-2", seq, drift=0.2) for seq in range(1, 3)))

    response = client.get("/api/v1/drift", headers=owner.headers)
    assert response.status_code == 200, response.text
    summary = response.json()
    assert [(d["device_id"], d["state"], d["model_version"]) for d in summary] == [
        ("d-1", "drifting", "1.0.0"),
        ("d-2", "ok", "1.0.0"),
    ]
    assert summary[0]["reason"] == "drift" and summary[0]["alarm_id"] is not None
    assert summary[1]["p95_ratio"] == pytest.approx(1.0)
    drifting = client.get("/api/v1/drift", params={"state": "drifting"}, headers=owner.headers).json()
    assert [d["device_id"] for d in drifting] == ["d-1"]
    assert client.get("/api/v1/drift", headers=other.headers).json() == []

    window = {"since": T0.replace(tzinfo=None).isoformat(), "until": (T0 + timedelta(hours=2)).isoformat()}
    series = client.get("/api/v1/drift/devices/d-1", params=window, headers=owner.headers)
    assert series.status_code == 200, series.text
    [one] = series.json()["series"]
    assert (one["model_id"], one["model_version"], one["card_p50"], one["card_p95"]) == (
        "pump-ae",
        "1.0.0",
        0.09,
        0.2,
    )
    assert (one["drift_limit"], one["p95_limit"]) == (1.5, pytest.approx(0.6))
    assert [p["drift"] for p in one["points"]] == [2.2] * 4
    assert client.get("/api/v1/drift/devices/d-1", params=window, headers=other.headers).status_code == 404
    assert client.get("/api/v1/drift/devices/nope", headers=owner.headers).status_code == 404
    backwards = {"since": window["until"], "until": window["since"]}
    assert client.get("/api/v1/drift/devices/d-1", params=backwards, headers=owner.headers).status_code == 400
    assert client.get("/api/v1/drift", headers={}).status_code == 401
    deleted = client.delete("/api/v1/devices/d-2", params={"keep_data": "true"}, headers=owner.headers)
    assert deleted.status_code == 204, deleted.text
    assert [d["device_id"] for d in client.get("/api/v1/drift", headers=owner.headers).json()] == ["d-1"]


def test_long_ranges_are_averaged_into_max_points(world: tuple[sessionmaker[Session], int, int]) -> None:
    sessions, org_a, _ = world
    store = _store(sessions)
    seed.ingest_on_time(store, *(report("m1", seq, drift=0.1 * (seq % 2)) for seq in range(120)))
    with sessions() as session:
        [series] = drift_queries.device_series(
            session, org_a, "m1", T0, T0 + timedelta(hours=2), limits=LIMITS, max_points=60
        )
    assert len(series.points) == 60
    assert all(p.drift == pytest.approx(0.05) for p in series.points)  # pairs of 0.1 and 0.0
