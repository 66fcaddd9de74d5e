"""The 'why' in plain words (explanations, commissioning reports), the score axis that keeps a
1,000x fault and the threshold readable, and the queries behind both on a real (SQLite) database
fed through the real ingest store."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.contracts import Event, Explanation
from edgefleet.dashboard.charts import score_axis, score_chart
from edgefleet.dashboard.explain import (
    commissioning_figures,
    commissioning_summary,
    event_why,
    explanation_lines,
    hint_line,
    number,
)
from edgefleet.dashboard.insight import alarm_whys, commissioning_states
from edgefleet.server.db import make_engine, make_sessionmaker, upgrade
from edgefleet.server.db.models import Alarm, Device, Organization
from edgefleet.server.ingest import IngestStore
from tests.dashboard.why_data import imbalance, report
from tests.server import seed

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)


def test_an_explanation_reads_as_hint_top_deviations_and_iso_zone() -> None:
    lines = explanation_lines(imbalance())
    assert lines == [
        "imbalance: energy at the shaft frequency 15 Hz",
        "ax band 10-20 Hz +8.3σ · ay rms +4.1σ · az kurtosis -2.2σ",  # the largest three, by |σ|
        "ISO 10816 zone C (7.1 mm/s): unsatisfactory for long-term operation",
    ]
    # the device's own words win; the hint is named once
    assert hint_line(imbalance("energy at 1x, 14.8 Hz")) == "imbalance: energy at 1x, 14.8 Hz"
    assert hint_line(imbalance("imbalance at 14.8 Hz")) == "imbalance at 14.8 Hz"
    estimated = imbalance().model_copy(update={"hint": "misalignment", "shaft_hz_estimated": True})
    assert hint_line(estimated) == (
        "misalignment: energy at twice the shaft frequency (30 Hz) (shaft frequency estimated)"
    )
    assert explanation_lines(Explanation()) == []


def test_event_why_reads_stored_rows_and_stream_events_and_ignores_what_it_cannot_parse() -> None:
    stored = {"data": {"explanation": imbalance().model_dump(mode="json", exclude_none=True)}}
    streamed = {"explanation": imbalance().model_dump(mode="json", exclude_none=True)}
    assert event_why(stored) == event_why(streamed) == explanation_lines(imbalance())
    blind = {"commissioning": report("blind").model_dump(mode="json")}
    [line] = event_why(blind)
    assert line.startswith("blind to its faults: threshold 4.2 (model card 1)")
    assert "known faults visible 12% (card 96%)" in line
    assert event_why({"data": {"explanation": {"hint": "not-a-hint"}}}) == []  # a newer device: nothing
    assert event_why({"data": {}}) == [] and event_why({}) == []


def test_commissioning_figures_name_visibility_and_spread() -> None:
    visibility, spread, threshold = commissioning_figures(report("blind"), None)
    assert (
        visibility.startswith("Fault visibility 12%") and "(under the card's own baseline: 96%)" in visibility
    )
    assert "3.1x" in spread and "6.2x" in spread and "ax_kurtosis" in spread
    assert threshold.startswith("Threshold 4.2 against the model card's 1")
    # telemetry's newer figure wins; without a report only that is known
    assert commissioning_figures(None, 0.05) == [
        "Fault visibility 5%: that share of the model card's known fault windows still scores above "
        "the threshold on this machine's baseline."
    ]
    assert "threshold 0.84 (model card 1)" in commissioning_summary(report("ok"))


def test_numbers_read_without_exponents() -> None:
    assert [number(v) for v in (0.01234, 4.2, 1.0, 1300.0, 1_234_567.0, 2e12)] == [
        "0.0123", "4.2", "1", "1,300", "1,234,567", "2e+12",
    ]  # fmt: skip


def test_score_axis_turns_logarithmic_when_a_fault_dwarfs_the_normal_scores() -> None:
    normal = score_axis([0.4, 0.6, 0.78], threshold=1.0)
    assert normal["type"] == "value" and normal["scale"] is True
    axis = score_axis([0.1, 0.12, 950.0, 1300.0], threshold=1.0)
    assert (axis["type"], axis["min"], axis["max"]) == ("log", 0.1, 10_000.0)
    assert "log scale" in axis["name"]
    assert score_axis([], None)["type"] == "value"


def test_score_chart_always_marks_the_threshold_even_without_telemetry_threshold() -> None:
    points = [(T0 + timedelta(minutes=i), s, s * 1.3, None) for i, s in enumerate([0.1, 0.0, 1000.0])]
    option = score_chart(points, [], now=T0 + timedelta(hours=1), threshold=1.0)
    series = {s["name"]: s for s in option["series"]}
    [mark] = series["score p95"]["markLine"]["data"]
    assert mark["yAxis"] == 1.0 and mark["label"]["formatter"] == "threshold 1"
    assert [v for _, v in series["threshold"]["data"]] == [1.0, 1.0]  # flat across the range
    assert option["yAxis"]["type"] == "log"
    assert [v for _, v in series["score p95"]["data"]] == [0.1, 0.1, 1000.0]  # 0 sits on the log floor
    # with the telemetry's threshold, the marked line is its latest value
    reported = [(T0 + timedelta(minutes=i), 0.5, 0.6, t) for i, t in enumerate([1.0, 0.8])]
    latest = score_chart(reported, [], now=T0, threshold=5.0)["series"][0]["markLine"]["data"][0]
    assert latest["yAxis"] == 0.8


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'why.db'}")
    upgrade(engine)
    return make_sessionmaker(engine)


def _org(sessions: sessionmaker[Session], name: str, devices: list[str]) -> int:
    with sessions() as session, session.begin():
        org = Organization(name=name)
        session.add(org)
        session.flush()
        for device_id in devices:
            session.add(Device(id=device_id, org_id=org.id, name=device_id, kind="vibration"))
        return org.id


def _commissioning(device_id: str, seq: int, status: str, ts: datetime) -> Event:
    return Event(
        device_id=device_id, seq=seq, ts=ts, kind="commissioning", active=status != "ok",
        severity="critical" if status == "blind" else "info", reason=status,
        commissioning=report(status),
    )  # fmt: skip


def test_commissioning_state_takes_the_newer_of_event_and_telemetry(sessions: sessionmaker[Session]) -> None:
    org = _org(sessions, "a", ["a-1", "a-2", "a-3", "a-4"])
    other = _org(sessions, "b", ["b-1"])
    store = IngestStore(sessions)
    now = datetime.now(UTC)
    seed.ingest(store, _commissioning("a-1", 1, "blind", now))  # blind, told by an event
    seed.ingest(store, _commissioning("a-2", 1, "blind", now))  # blind, then telemetry says ok
    seed.ingest(store, seed.telemetry("a-2", 2, ts=now).model_copy(update={"commissioning": "ok"}))
    blind = seed.telemetry("a-3", 1, ts=now).model_copy(
        update={"commissioning": "blind", "fault_visibility": 0.05}
    )
    seed.ingest(store, blind)  # telemetry only
    seed.ingest(store, seed.telemetry("a-4", 1, ts=now))  # reports nothing about commissioning
    with sessions() as session:
        states = commissioning_states(session, org, ["a-1", "a-2", "a-3", "a-4", "b-1"])
        assert commissioning_states(session, other, ["a-1"]) == {}  # not theirs
    assert set(states) == {"a-1", "a-2", "a-3"}
    assert (states["a-1"].status, states["a-1"].fault_visibility, states["a-1"].needs_action) == (
        "blind",
        0.12,
        True,
    )
    assert states["a-1"].report is not None and states["a-1"].report.threshold == 4.2
    assert (states["a-2"].status, states["a-2"].needs_action) == ("ok", False)
    assert states["a-2"].fault_visibility is None  # the report's 12% was for `blind`, not this `ok`
    assert (states["a-3"].status, states["a-3"].fault_visibility, states["a-3"].report) == (
        "blind",
        0.05,
        None,
    )


def test_alarm_whys_come_from_each_alarms_latest_raising_event(sessions: sessionmaker[Session]) -> None:
    org = _org(sessions, "a", ["a-1", "a-2"])
    store = IngestStore(sessions)
    now = datetime.now(UTC)
    first = seed.anomaly("a-1", seq=1, ts=now - timedelta(minutes=2))
    latest = seed.anomaly("a-1", seq=2, ts=now - timedelta(minutes=1)).model_copy(
        update={"explanation": imbalance()}
    )
    normal = seed.anomaly("a-1", seq=3, active=False, ts=now)  # attached to the alarm, but says nothing
    seed.ingest(store, first, latest, normal, _commissioning("a-2", 1, "blind", now))
    with sessions() as session:
        alarms = {a.device_id: a.id for a in session.query(Alarm).filter(Alarm.org_id == org)}
        whys = alarm_whys(session, org, list(alarms.values()))
        assert alarm_whys(session, org + 1, list(alarms.values())) == {}
    assert whys[alarms["a-1"]].explanation == imbalance() and whys[alarms["a-1"]].report is None
    assert whys[alarms["a-2"]].report == report("blind") and whys[alarms["a-2"]].explanation is None
