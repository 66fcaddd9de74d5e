"""Read queries the pages need beyond the REST API's: one page of the fleet with sparklines, a
device's history, alarm statistics. All scoped to one organization; all return plain data."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from edgefleet.contracts import utc_now
from edgefleet.dashboard.insight import commissioning_states
from edgefleet.server.db.models import Alarm, Device, EventRow, TelemetryHourly, TelemetryRow
from edgefleet.server.services import drift_queries
from edgefleet.server.services.drift import DriftLimits
from edgefleet.server.services.drift_queries import DeviceDrift, VersionSeries

SPARK_POINTS = 24
StateFilter = Literal["all", "online", "offline", "alarm"]


@dataclass(frozen=True)
class FleetQuery:
    search: str = ""
    kind: str = "all"
    state: StateFilter = "all"
    page: int = 1
    per_page: int = 48


@dataclass(frozen=True)
class DeviceCard:
    id: str
    name: str
    kind: str
    online: bool
    last_seen: datetime | None
    mode: str | None
    firmware_version: str | None
    model_version: str | None
    revoked: bool
    open_alarms: int
    spark: list[float] = field(default_factory=list)
    """Anomaly score p95 per telemetry (vibration) or detections per hour (camera), oldest first."""
    commissioning: str | None = None
    """ok | blind | noisy_baseline: the last commissioning's verdict (None: never reported)."""


@dataclass(frozen=True)
class FleetPage:
    cards: list[DeviceCard]
    total: int
    pages: int


def _open_alarms() -> Select[str, int]:
    return (
        select(Alarm.device_id, func.count().label("n"))
        .where(Alarm.cleared_at.is_(None))
        .group_by(Alarm.device_id)
    )


def fleet_page(session: Session, org_id: int, query: FleetQuery) -> FleetPage:
    alarms = _open_alarms().where(Alarm.org_id == org_id).subquery()
    base = select(Device, func.coalesce(alarms.c.n, 0)).outerjoin(alarms, alarms.c.device_id == Device.id)
    base = base.where(Device.org_id == org_id)
    if query.search.strip():
        like = f"%{query.search.strip().lower()}%"
        base = base.where(or_(func.lower(Device.name).like(like), func.lower(Device.id).like(like)))
    if query.kind != "all":
        base = base.where(Device.kind == query.kind)
    if query.state == "online":
        base = base.where(Device.online)
    elif query.state == "offline":
        base = base.where(Device.online.is_(False))
    elif query.state == "alarm":
        base = base.where(alarms.c.n > 0)
    total = int(session.scalar(select(func.count()).select_from(base.subquery())) or 0)
    pages = max(1, -(-total // query.per_page))
    page = min(max(query.page, 1), pages)
    ordered = base.order_by(func.coalesce(alarms.c.n, 0).desc(), Device.name, Device.id)
    rows = session.execute(ordered.offset((page - 1) * query.per_page).limit(query.per_page)).all()
    sparks = sparklines(session, org_id, [(d.id, d.kind) for d, _ in rows])
    commissioning = commissioning_states(session, org_id, [d.id for d, _ in rows if d.kind == "vibration"])
    cards = [
        DeviceCard(
            id=d.id,
            name=d.name,
            kind=d.kind,
            online=d.online,
            last_seen=d.last_seen,
            mode=d.mode,
            firmware_version=d.firmware_version,
            model_version=d.model_version,
            revoked=d.revoked_at is not None,
            open_alarms=int(n),
            spark=sparks.get(d.id, []),
            commissioning=c.status if (c := commissioning.get(d.id)) else None,
        )
        for d, n in rows
    ]
    return FleetPage(cards, total, pages)


def sparklines(session: Session, org_id: int, devices: list[tuple[str, str]]) -> dict[str, list[float]]:
    """The last SPARK_POINTS telemetry values per device, in one query (a window function)."""
    if not devices:
        return {}
    kinds = dict(devices)
    rank = (
        func.row_number()
        .over(partition_by=TelemetryRow.device_id, order_by=TelemetryRow.ts.desc())
        .label("rank")
    )
    inner = (
        select(
            TelemetryRow.device_id,
            TelemetryRow.ts,
            TelemetryRow.score_p95,
            TelemetryRow.detections_per_hour,
            rank,
        )
        .where(TelemetryRow.org_id == org_id, TelemetryRow.device_id.in_(list(kinds)))
        .subquery()
    )
    rows = session.execute(
        select(inner.c.device_id, inner.c.score_p95, inner.c.detections_per_hour)
        .where(inner.c.rank <= SPARK_POINTS)
        .order_by(inner.c.device_id, inner.c.ts)
    )
    out: dict[str, list[float]] = {}
    for device_id, score, detections in rows:
        value = detections if kinds[device_id] == "camera" else score
        if value is not None:
            out.setdefault(device_id, []).append(float(value))
    return out


@dataclass(frozen=True)
class AlarmSpan:
    start: datetime
    end: datetime | None
    kind: str
    severity: str


def alarm_spans(session: Session, org_id: int, device_id: str, since: datetime) -> list[AlarmSpan]:
    rows = session.scalars(
        select(Alarm)
        .where(
            Alarm.org_id == org_id,
            Alarm.device_id == device_id,
            or_(Alarm.cleared_at.is_(None), Alarm.cleared_at >= since),
        )
        .order_by(Alarm.opened_at)
    )
    return [AlarmSpan(a.opened_at, a.cleared_at, a.kind, a.severity) for a in rows]


def telemetry_since(session: Session, org_id: int, device_id: str, since: datetime) -> list[TelemetryRow]:
    query = (
        select(TelemetryRow)
        # `org_id + 0`: with a bare org_id SQLite prefers ix_telemetry_org_ts and scans the whole
        # organization (seconds at 1,000 devices x 24 h instead of milliseconds)
        .where(
            (TelemetryRow.org_id + 0) == org_id, TelemetryRow.device_id == device_id, TelemetryRow.ts >= since
        )
        .order_by(TelemetryRow.ts.desc())
        .limit(5_000)
    )
    return list(reversed(list(session.scalars(query))))


def latest_thumbnail(session: Session, org_id: int, device_id: str) -> str | None:
    """The newest person event's JPEG (base64), scanning only recent events."""
    rows = session.scalars(
        select(EventRow)
        .where(EventRow.org_id == org_id, EventRow.device_id == device_id, EventRow.kind == "person")
        .order_by(EventRow.id.desc())
        .limit(20)
    )
    for row in rows:
        thumb = row.data.get("thumbnail_jpeg") if isinstance(row.data, dict) else None
        if isinstance(thumb, str) and thumb:
            return thumb
    return None


@dataclass(frozen=True)
class AlarmStats:
    per_day: list[dict[str, Any]]
    """{"day": datetime, "kind": str, "count": int} for alarms opened in the range."""
    ack_seconds_median: float | None
    ack_seconds_mean: float | None
    acknowledged: int
    opened: int


def alarm_stats(session: Session, org_id: int, since: datetime, until: datetime) -> AlarmStats:
    rows = list(
        session.execute(
            select(Alarm.opened_at, Alarm.kind, Alarm.acked_at).where(
                Alarm.org_id == org_id, Alarm.opened_at >= since, Alarm.opened_at < until
            )
        )
    )
    counts: dict[tuple[datetime, str], int] = {}
    waits: list[float] = []
    for opened, kind, acked in rows:
        day = opened.replace(hour=0, minute=0, second=0, microsecond=0)
        counts[day, kind] = counts.get((day, kind), 0) + 1
        if acked is not None:
            waits.append((acked - opened).total_seconds())
    waits.sort()
    median = waits[len(waits) // 2] if waits else None
    return AlarmStats(
        per_day=[{"day": d, "kind": k, "count": n} for (d, k), n in sorted(counts.items())],
        ack_seconds_median=median,
        ack_seconds_mean=sum(waits) / len(waits) if waits else None,
        acknowledged=len(waits),
        opened=len(rows),
    )


def anomaly_rate_per_device(session: Session, org_id: int, since: datetime) -> list[tuple[str, float]]:
    """Anomalous windows / windows per vibration device over the range, from the hourly rollups."""
    rows = session.execute(
        select(
            TelemetryHourly.device_id,
            func.sum(TelemetryHourly.anomalous_windows),
            func.sum(TelemetryHourly.windows),
        )
        .join(Device, Device.id == TelemetryHourly.device_id)
        .where(TelemetryHourly.org_id == org_id, TelemetryHourly.hour >= since, Device.kind == "vibration")
        .group_by(TelemetryHourly.device_id)
        .order_by(TelemetryHourly.device_id)
    )
    return [(d, float(a) / float(w)) for d, a, w in rows if w]


def since(hours: float) -> datetime:
    return utc_now() - timedelta(hours=hours)


# --- drift (issue 8) ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DriftHistory:
    state: DeviceDrift | None
    """The device's current verdict (None before it reported a model version)."""
    series: list[VersionSeries]
    """Drift and score percentiles per model version, oldest version first."""


def drift_history(
    session: Session, org_id: int, device_id: str, since: datetime, limits: DriftLimits
) -> DriftHistory:
    """What the device page's drift section shows, for telemetry since `since`."""
    return DriftHistory(
        state=drift_queries.device_drift(session, org_id, device_id, limits),
        series=drift_queries.device_series(
            session, org_id, device_id, since, utc_now() + timedelta(seconds=1), limits=limits, max_points=720
        ),
    )
