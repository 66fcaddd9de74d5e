"""Read side: events with cursor pagination, telemetry, rollups and statistics (org-scoped)."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from edgefleet.server.db.models import (
    Alarm,
    Device,
    EventRow,
    TelemetryHourly,
    TelemetryRow,
    WindowSampleRow,
)
from edgefleet.server.errors import ServerError

Row = TypeVar("Row", EventRow, WindowSampleRow)


class BadQueryError(ServerError):
    """A filter or cursor that cannot be used."""


@dataclass(frozen=True)
class EventFilter:
    device_id: str | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        value = int(cursor)
    except ValueError as err:
        raise BadQueryError(f"bad cursor {cursor!r}") from err
    if value < 0:
        raise BadQueryError(f"bad cursor {cursor!r}")
    return value


def keyset_page(
    session: Session, query: Select[Row], id_column: Any, cursor: str | None, limit: int
) -> tuple[list[Row], str | None]:
    """Newest first by id, `limit` rows after `cursor`; the next cursor is the last id when more remain
    (a keyset on id: stable while new rows arrive)."""
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(id_column < after)
    rows = list(session.scalars(query.order_by(id_column.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (str(rows[-1].id) if more and rows else None)


def list_events(
    session: Session, org_id: int, where: EventFilter, cursor: str | None, limit: int
) -> tuple[list[EventRow], str | None]:
    """Newest first; `next_cursor` continues with older events (keyset on id, stable under inserts)."""
    query = select(EventRow).where(EventRow.org_id == org_id)
    if where.device_id:
        query = query.where(EventRow.device_id == where.device_id)
    if where.kind:
        query = query.where(EventRow.kind == where.kind)
    if where.since:
        query = query.where(EventRow.ts >= where.since)
    if where.until:
        query = query.where(EventRow.ts < where.until)
    return keyset_page(session, query, EventRow.id, cursor, limit)


def get_event(session: Session, org_id: int, event_id: int) -> EventRow | None:
    row = session.get(EventRow, event_id)
    return row if row is not None and row.org_id == org_id else None


def list_telemetry(
    session: Session,
    org_id: int,
    device_id: str,
    *,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[TelemetryRow]:
    query = select(TelemetryRow).where(TelemetryRow.org_id == org_id, TelemetryRow.device_id == device_id)
    if since:
        query = query.where(TelemetryRow.ts >= since)
    if until:
        query = query.where(TelemetryRow.ts < until)
    return list(session.scalars(query.order_by(TelemetryRow.ts.desc()).limit(limit)))


def list_rollups(
    session: Session, org_id: int, device_id: str | None, since: datetime | None, until: datetime | None
) -> list[dict[str, Any]]:
    query = select(TelemetryHourly).where(TelemetryHourly.org_id == org_id)
    if device_id:
        query = query.where(TelemetryHourly.device_id == device_id)
    if since:
        query = query.where(TelemetryHourly.hour >= since)
    if until:
        query = query.where(TelemetryHourly.hour < until)
    rows = session.scalars(query.order_by(TelemetryHourly.hour, TelemetryHourly.device_id).limit(10_000))
    return [
        {
            "device_id": r.device_id,
            "hour": r.hour,
            "samples": r.samples,
            "windows": r.windows,
            "anomaly_rate": r.anomalous_windows / r.windows if r.windows else None,
            "score_max": r.score_max,
            "inference_us_mean": r.inference_us_sum / r.inference_samples if r.inference_samples else None,
            "detections_per_hour_max": r.detections_per_hour_max,
        }
        for r in rows
    ]


def _bucket(session: Session, column: Any, bucket: Literal["hour", "day"]) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "sqlite":
        fmt = "%Y-%m-%d %H:00:00" if bucket == "hour" else "%Y-%m-%d 00:00:00"
        return func.strftime(fmt, column)
    return func.date_trunc(bucket, column)


def _as_utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def event_counts(
    session: Session,
    org_id: int,
    *,
    bucket: Literal["hour", "day"],
    group_by: Literal["device", "kind"],
    since: datetime,
    until: datetime,
    kind: str | None = None,
) -> list[dict[str, Any]]:
    """Events per hour or day, per device or per kind."""
    slot = _bucket(session, EventRow.ts, bucket).label("bucket")
    key = (EventRow.device_id if group_by == "device" else EventRow.kind).label("key")
    query: Select[Any] = select(slot, key, func.count().label("n")).where(
        EventRow.org_id == org_id, EventRow.ts >= since, EventRow.ts < until
    )
    if kind:
        query = query.where(EventRow.kind == kind)
    query = query.group_by(slot, key).order_by(slot, key)
    return [{"bucket": _as_utc(b), "key": k, "count": n} for b, k, n in session.execute(query)]


def overview(session: Session, org_id: int, since: datetime, until: datetime) -> dict[str, Any]:
    def count(query: Select[Any]) -> int:
        return int(session.scalar(query) or 0)

    devices = count(select(func.count()).select_from(Device).where(Device.org_id == org_id))
    online = count(select(func.count()).select_from(Device).where(Device.org_id == org_id, Device.online))
    open_alarms = count(
        select(func.count()).select_from(Alarm).where(Alarm.org_id == org_id, Alarm.cleared_at.is_(None))
    )
    events = count(
        select(func.count())
        .select_from(EventRow)
        .where(EventRow.org_id == org_id, EventRow.ts >= since, EventRow.ts < until)
    )
    windows, anomalous = session.execute(
        select(func.sum(TelemetryHourly.windows), func.sum(TelemetryHourly.anomalous_windows)).where(
            TelemetryHourly.org_id == org_id, TelemetryHourly.hour >= since, TelemetryHourly.hour < until
        )
    ).one()
    persons = count(
        select(func.count())
        .select_from(EventRow)
        .where(
            EventRow.org_id == org_id, EventRow.kind == "person", EventRow.ts >= since, EventRow.ts < until
        )
    )
    hours = max((until - since) / timedelta(hours=1), 1e-9)
    return {
        "devices": devices,
        "online": online,
        "open_alarms": open_alarms,
        "events": events,
        "anomaly_rate": float(anomalous) / float(windows) if windows else None,
        "detections_per_hour": persons / hours,
    }
