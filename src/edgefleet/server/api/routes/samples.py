"""Sampled raw windows devices uploaded for retraining (`edgefleet model retrain --from-server`)."""

from typing import Annotated

from fastapi import APIRouter, Query

from edgefleet.server.api.deps import CurrentUser, Cursor, QueryTime, SessionDep
from edgefleet.server.schemas import DeviceKindStr, Page, WindowSamplePublic
from edgefleet.server.services import samples

router = APIRouter(prefix="/samples", tags=["samples"])


@router.get("")
def list_samples(
    *,
    principal: CurrentUser,
    session: SessionDep,
    device_kind: DeviceKindStr | None = None,
    model_id: Annotated[str | None, Query(max_length=64)] = None,
    model_version: Annotated[str | None, Query(max_length=32)] = None,
    device_id: Annotated[str | None, Query(max_length=64)] = None,
    since: QueryTime = None,
    until: QueryTime = None,
    cursor: Cursor,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Page[WindowSamplePublic]:
    """Newest first (the server keeps the latest N per device). Pass `next_cursor` back as `cursor`."""
    where = samples.SampleFilter(device_kind, model_id, model_version, device_id, since, until)
    rows, next_cursor = samples.list_samples(session, principal.org_id, where, cursor, limit)
    items = [WindowSamplePublic.model_validate(r) for r in rows]
    return Page[WindowSamplePublic](items=items, next_cursor=next_cursor)
