"""Read queries behind the 'why' of the pages: each device's commissioning state (from its latest
commissioning event and its latest telemetry) and the explanation behind each alarm."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from edgefleet.contracts import CommissioningReport, Explanation
from edgefleet.dashboard.explain import explanation_of, report_of
from edgefleet.server.db.models import Alarm, EventRow, TelemetryRow


@dataclass(frozen=True)
class CommissioningState:
    status: str
    """ok | blind | noisy_baseline, from whichever of the two sources is newer."""
    reported_at: datetime
    """When the server received that status."""
    report: CommissioningReport | None
    """The latest commissioning event's report (None when only telemetry has said it)."""
    fault_visibility: float | None

    @property
    def needs_action(self) -> bool:
        return self.status in ("blind", "noisy_baseline")


def _latest_events(session: Session, org_id: int, ids: list[str]) -> dict[str, EventRow]:
    newest = (
        select(func.max(EventRow.id))
        .where(EventRow.org_id == org_id, EventRow.kind == "commissioning", EventRow.device_id.in_(ids))
        .group_by(EventRow.device_id)
    )
    return {e.device_id: e for e in session.scalars(select(EventRow).where(EventRow.id.in_(newest)))}


def _latest_telemetry(session: Session, org_id: int, ids: list[str]) -> dict[str, TelemetryRow]:
    # max(ts) per device straight from ix_telemetry_device_ts, then the rows themselves
    newest = (
        select(TelemetryRow.device_id, func.max(TelemetryRow.ts).label("ts"))
        .where(TelemetryRow.device_id.in_(ids))
        .group_by(TelemetryRow.device_id)
        .subquery()
    )
    rows = session.scalars(
        select(TelemetryRow)
        .join(newest, and_(TelemetryRow.device_id == newest.c.device_id, TelemetryRow.ts == newest.c.ts))
        .where(TelemetryRow.org_id == org_id)
        .order_by(TelemetryRow.id)
    )
    return {r.device_id: r for r in rows}


def commissioning_states(
    session: Session, org_id: int, device_ids: Sequence[str]
) -> dict[str, CommissioningState]:
    """The commissioning state of each device that has reported one (in telemetry or as an event)."""
    ids = list(dict.fromkeys(device_ids))
    if not ids:
        return {}
    events = _latest_events(session, org_id, ids)
    telemetry = _latest_telemetry(session, org_id, ids)
    out: dict[str, CommissioningState] = {}
    for device_id in ids:
        event, row = events.get(device_id), telemetry.get(device_id)
        report = report_of({"data": event.data}) if event is not None else None
        data: dict[str, Any] = row.data if row is not None and isinstance(row.data, dict) else {}
        told = data.get("commissioning")
        if (
            isinstance(told, str)
            and row is not None
            and (event is None or row.received_at >= event.received_at)
        ):
            visible = data.get("fault_visibility")
            if not isinstance(visible, int | float):
                visible = report.fault_visibility if report and report.status == told else None
            out[device_id] = CommissioningState(told, row.received_at, report, visible)
        elif event is not None:
            status = report.status if report else str(event.reason or "ok")
            out[device_id] = CommissioningState(
                status, event.received_at, report, report.fault_visibility if report else None
            )
    return out


@dataclass(frozen=True)
class AlarmWhy:
    explanation: Explanation | None
    report: CommissioningReport | None


def alarm_whys(session: Session, org_id: int, alarm_ids: Sequence[int]) -> dict[int, AlarmWhy]:
    """What the latest raising event of each alarm said about why (anomaly: its explanation;
    commissioning: its report). Found through `last_event_at` and ix_events_device_ts."""
    if not alarm_ids:
        return {}
    rows = session.scalars(
        select(EventRow)
        .join(
            Alarm,
            and_(
                EventRow.device_id == Alarm.device_id,
                EventRow.ts == Alarm.last_event_at,
                EventRow.alarm_id == Alarm.id,
            ),
        )
        .where(Alarm.org_id == org_id, Alarm.id.in_(list(alarm_ids)), EventRow.active.is_(True))
        .order_by(EventRow.id)
    )
    out: dict[int, AlarmWhy] = {}
    for row in rows:  # oldest first: the newest of ties wins
        event = {"data": row.data}
        why = AlarmWhy(explanation_of(event), report_of(event))
        if row.alarm_id is not None and (why.explanation or why.report):
            out[row.alarm_id] = why
    return out
