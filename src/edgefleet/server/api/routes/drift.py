"""Drift per device and model version, against the model card."""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from edgefleet.contracts import utc_now
from edgefleet.server.api.deps import ContextDep, CurrentUser, QueryTime, SessionDep
from edgefleet.server.schemas import DriftDevicePublic, DriftDeviceSeries, DriftSeriesPublic
from edgefleet.server.services import devices, drift_queries
from edgefleet.server.services.drift import DriftLimits
from edgefleet.server.services.queries import BadQueryError

router = APIRouter(prefix="/drift", tags=["drift"])
MAX_RANGE = timedelta(days=31)


def _utc(value: datetime | None) -> datetime | None:
    """Query times without a zone are UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@router.get("")
def drift_summary(
    principal: CurrentUser,
    session: SessionDep,
    context: ContextDep,
    state: Literal["ok", "drifting"] | None = None,
) -> list[DriftDevicePublic]:
    """Per device: its model version, latest drift and score p95 ratio, ok or drifting (drifting first)."""
    limits = DriftLimits.from_settings(context.settings)
    rows = drift_queries.fleet_summary(session, principal.org_id, limits, state)
    return [DriftDevicePublic.model_validate(r) for r in rows]


@router.get("/devices/{device_id}")
def device_drift(
    device_id: str,
    *,
    principal: CurrentUser,
    session: SessionDep,
    context: ContextDep,
    since: QueryTime = None,
    until: QueryTime = None,
    max_points: Annotated[int, Query(ge=10, le=5000)] = 1000,
) -> DriftDeviceSeries:
    """Drift and score p50/p95 over time per model version, with the card's reference and the limits
    (default: the last 24 h; at most 31 days)."""
    devices.get_device(session, principal.org_id, device_id)
    end = _utc(until) or utc_now()
    start = _utc(since) or end - timedelta(hours=24)
    if not start < end or end - start > MAX_RANGE:
        raise BadQueryError("need since < until, at most 31 days apart")
    limits = DriftLimits.from_settings(context.settings)
    series = drift_queries.device_series(
        session, principal.org_id, device_id, start, end, limits=limits, max_points=max_points
    )
    return DriftDeviceSeries(
        device_id=device_id,
        since=start,
        until=end,
        series=[DriftSeriesPublic.model_validate(s) for s in series],
    )
