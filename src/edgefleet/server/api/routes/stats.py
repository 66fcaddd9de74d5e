"""Statistics for the dashboard: event counts per hour/day, the fleet overview."""

from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import APIRouter

from edgefleet.server.api.deps import CurrentUser, QueryTime, SessionDep
from edgefleet.server.schemas import CountBucket, EventKindStr, EventStats, Overview
from edgefleet.server.services import queries

router = APIRouter(prefix="/stats", tags=["statistics"])


def _period(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    end = until or datetime.now(UTC)
    return since or end - timedelta(days=1), end


@router.get("/events")
def event_statistics(
    *,
    principal: CurrentUser,
    session: SessionDep,
    bucket: Literal["hour", "day"] = "hour",
    group_by: Literal["device", "kind"] = "kind",
    kind: EventKindStr | None = None,
    since: QueryTime = None,
    until: QueryTime = None,
) -> EventStats:
    """Events per hour or day, per device or kind (default: the last 24 h)."""
    start, end = _period(since, until)
    counts = queries.event_counts(
        session, principal.org_id, bucket=bucket, group_by=group_by, since=start, until=end, kind=kind
    )
    return EventStats(
        bucket=bucket, group_by=group_by, counts=[CountBucket.model_validate(c) for c in counts]
    )


@router.get("/overview")
def read_overview(
    principal: CurrentUser, session: SessionDep, since: QueryTime = None, until: QueryTime = None
) -> Overview:
    """Devices, online, open alarms, events, anomaly rate and detections per hour over the period."""
    start, end = _period(since, until)
    return Overview.model_validate(queries.overview(session, principal.org_id, start, end))
