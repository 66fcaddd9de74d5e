"""Drift test data: telemetry with a model version and drift statistics, registry rows with a card."""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from edgefleet.contracts import Event, Telemetry
from edgefleet.server.db.models import ModelRow

# Recent, so that the app's retention purge (30 days of telemetry) never deletes it mid-test.
T0 = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
INTERVAL = timedelta(seconds=60)
CARD_STATS = {"mean": 0.1, "std": 0.05, "p50": 0.09, "p95": 0.2, "p99": 0.3, "max": 0.5, "count": 1000}


def report(
    device_id: str,
    seq: int,
    drift: float | None = 0.3,
    p95: float | None = 0.2,
    version: str = "1.0.0",
    model_id: str = "pump-ae",
    ts: datetime | None = None,
) -> Telemetry:
    """One telemetry interval (the `seq`-th, so its time is T0 + seq minutes unless given)."""
    return Telemetry(
        device_id=device_id,
        seq=seq,
        ts=ts or T0 + seq * INTERVAL,
        mode="running",
        uptime_s=60.0 * seq,
        interval_s=60.0,
        windows=120,
        anomaly_rate=0.0,
        score_p50=None if p95 is None else p95 / 2,
        score_p95=p95,
        score_max=None if p95 is None else p95 * 1.5,
        drift=drift,
        model_id=model_id,
        model_version=version,
    )


def drift_event(device_id: str, seq: int, active: bool = True) -> Event:
    return Event(
        device_id=device_id,
        seq=seq,
        ts=T0 + seq * INTERVAL,
        kind="drift",
        active=active,
        reason="drift",
        model_id="pump-ae",
        model_version="1.0.0",
    )


def _dummy(column: Any) -> Any:
    """A value for a required registry column this test does not care about."""
    try:
        kind = column.type.python_type
    except NotImplementedError:
        kind = str
    values = {str: "x", int: 0, float: 0.0, bool: False, dict: {}, list: [], bytes: b"", datetime: T0}
    return values.get(kind, "x")


def add_model(
    sessions: sessionmaker[Session],
    org_id: int,
    version: str = "1.0.0",
    card: dict[str, Any] | None = None,
    model_id: str = "pump-ae",
) -> None:
    """A registry row whose card has `score_stats` (or the given card), other columns filled in."""
    values: dict[str, Any] = {
        "org_id": org_id,
        "model_id": model_id,
        "version": version,
        "card": {"model_id": model_id, "model_version": version, "score_stats": CARD_STATS}
        if card is None
        else card,
    }
    for column in ModelRow.__table__.columns:
        required = not (column.nullable or column.primary_key or column.default or column.server_default)
        if required and column.name not in values:
            values[column.name] = _dummy(column)
    with sessions() as session, session.begin():
        session.add(ModelRow(**values))
