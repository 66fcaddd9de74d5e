"""Retention: delete raw events and telemetry older than each organization's retention period.

Age is measured by the server's clock (`received_at`), never the device's `ts`: a device whose clock
runs a year behind must not have what it sends deleted on arrival, nor one a year ahead keep it forever.
Hourly telemetry rollups, alarms and the audit log are kept.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Delete, delete, select
from sqlalchemy.orm import Session

from edgefleet.contracts import utc_now
from edgefleet.server.db.models import EventRow, Organization, TelemetryRow


def _deleted(session: Session, statement: Delete) -> int:
    return cast(CursorResult[Any], session.execute(statement)).rowcount


@dataclass(frozen=True)
class Purged:
    events: int
    telemetry: int


def purge_expired(session: Session, now: datetime | None = None) -> Purged:
    now = now or utc_now()
    events = telemetry = 0
    for org_id, event_days, telemetry_days in session.execute(
        select(Organization.id, Organization.event_retention_days, Organization.telemetry_retention_days)
    ):
        event_cutoff = now - timedelta(days=event_days)
        events += _deleted(
            session,
            delete(EventRow).where(EventRow.org_id == org_id, EventRow.received_at < event_cutoff),
        )
        telemetry_cutoff = now - timedelta(days=telemetry_days)
        telemetry += _deleted(
            session,
            delete(TelemetryRow).where(
                TelemetryRow.org_id == org_id, TelemetryRow.received_at < telemetry_cutoff
            ),
        )
    return Purged(events, telemetry)
