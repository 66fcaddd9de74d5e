"""The device page's drift section: its query on a real (SQLite) database fed through the real ingest
store, and its chart definitions (limit line, model version changes, the card's reference)."""

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.dashboard.charts import drift_chart, drift_score_chart
from edgefleet.dashboard.queries import drift_history
from edgefleet.server.db import make_engine, make_sessionmaker, upgrade
from edgefleet.server.db.models import Device, Organization
from edgefleet.server.ingest import IngestStore
from edgefleet.server.services.drift import DriftLimits
from edgefleet.server.services.drift_queries import DriftPoint, VersionSeries
from tests.server import seed
from tests.server.drift_helpers import CARD_STATS, INTERVAL, T0, add_model, report

LIMITS = DriftLimits(drift=1.5, score_ratio=3.0, consecutive=3)


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    upgrade(engine)
    return make_sessionmaker(engine)


def _org(sessions: sessionmaker[Session], name: str) -> int:
    with sessions() as session, session.begin():
        org = Organization(name=name)
        session.add(org)
        session.flush()
        session.add(Device(id=f"{name}-1", org_id=org.id, name="Pump", kind="vibration"))
        return org.id


def test_drift_history_has_the_state_and_one_series_per_version(sessions: sessionmaker[Session]) -> None:
    org = _org(sessions, "a")
    other = _org(sessions, "b")
    add_model(sessions, org)  # 1.0.0 has a card; 1.1.0 is not in the registry
    store = IngestStore(sessions, drift_limits=LIMITS)
    seed.ingest(store, *(report("a-1", seq, drift=0.4) for seq in range(1, 4)))
    seed.ingest(store, *(report("a-1", seq, drift=2.1, version="1.1.0") for seq in range(4, 8)))
    with sessions() as session:
        history = drift_history(session, org, "a-1", T0, LIMITS)
        assert drift_history(session, other, "a-1", T0, LIMITS).state is None  # not theirs
    assert history.state is not None
    assert (history.state.state, history.state.model_version, history.state.reason) == (
        "drifting",
        "1.1.0",
        "drift",
    )
    assert history.state.alarm_id is not None and history.state.out_since == T0 + 4 * INTERVAL
    old, new = history.series
    assert (old.model_version, old.card_p95, len(old.points)) == ("1.0.0", CARD_STATS["p95"], 3)
    assert (new.model_version, new.card_p95, new.p95_limit, len(new.points)) == ("1.1.0", None, None, 4)


def test_drift_chart_draws_the_limit_and_marks_version_changes() -> None:
    _, series = _two_versions()
    option = drift_chart(series)
    lines = {s["name"]: s for s in option["series"]}
    assert set(lines) == {"drift 1.0.0", "drift 1.1.0"}
    assert [v for _, v in lines["drift 1.1.0"]["data"]] == [2.1, 2.1]
    marks = lines["drift 1.0.0"]["markLine"]["data"]
    [limit] = [m for m in marks if m.get("name") == "limit"]
    assert limit["yAxis"] == 1.5 and limit["label"]["formatter"] == "limit 1.5 σ"
    assert any(m.get("xAxis") == int((T0 + 2 * INTERVAL).timestamp() * 1000) for m in marks)  # -> 1.1.0
    assert "σ" in option["yAxis"]["name"] and "UTC" in option["xAxis"]["name"]
    assert drift_chart([])["series"] == []


def test_drift_score_chart_shows_the_cards_reference_per_version() -> None:
    with_card, series = _two_versions()
    names = {s["name"]: s for s in drift_score_chart(series)["series"]}
    # 1.0.0 has a card: its p50/p95 references and the p95 limit span that version's time only
    assert [v for _, v in names["card p95 1.0.0"]["data"]] == [with_card.card_p95] * 2
    assert [t for t, _ in names["card p95 1.0.0"]["data"]] == [
        int(T0.timestamp() * 1000),
        int((T0 + INTERVAL).timestamp() * 1000),
    ]
    assert [v for _, v in names["p95 limit 1.0.0"]["data"]] == [pytest.approx(0.6)] * 2
    assert "card p95 1.1.0" not in names and "p95 1.1.0" in names  # no card for 1.1.0: no reference


def _two_versions() -> tuple[VersionSeries, list[VersionSeries]]:
    """1.0.0 (with a card) for two intervals, then 1.1.0 (no card) drifting."""

    def points(start: int, drift: float) -> list[DriftPoint]:
        return [DriftPoint(T0 + (start + i) * INTERVAL, drift, 0.1, 0.2) for i in range(2)]

    card = VersionSeries("pump-ae", "1.0.0", 0.09, 0.2, 1.5, 3.0 * 0.2, points(0, 0.4))
    bare = VersionSeries("pump-ae", "1.1.0", None, None, 1.5, None, points(2, 2.1))
    return card, [card, bare]
