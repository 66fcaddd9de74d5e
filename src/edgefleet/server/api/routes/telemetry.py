"""Hourly telemetry rollups."""

from fastapi import APIRouter

from edgefleet.server.api.deps import CurrentUser, QueryTime, SessionDep
from edgefleet.server.schemas import RollupPublic
from edgefleet.server.services import queries

router = APIRouter(prefix="/telemetry", tags=["telemetry"])


@router.get("/rollups")
def list_rollups(
    principal: CurrentUser,
    session: SessionDep,
    device_id: str | None = None,
    since: QueryTime = None,
    until: QueryTime = None,
) -> list[RollupPublic]:
    """Per-device hourly summaries (kept after raw telemetry expires)."""
    rows = queries.list_rollups(session, principal.org_id, device_id, since, until)
    return [RollupPublic.model_validate(r) for r in rows]
