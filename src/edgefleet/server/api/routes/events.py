"""Events, filtered and cursor-paginated."""

from typing import Annotated

from fastapi import APIRouter, Query

from edgefleet.server.api.deps import CurrentUser, Cursor, IdPath, QueryTime, SessionDep
from edgefleet.server.errors import NotFoundError
from edgefleet.server.schemas import EventKindStr, EventPublic, Page
from edgefleet.server.services import queries

router = APIRouter(prefix="/events", tags=["events"])


@router.get("")
def list_events(
    *,
    principal: CurrentUser,
    session: SessionDep,
    device_id: str | None = None,
    kind: EventKindStr | None = None,
    since: QueryTime = None,
    until: QueryTime = None,
    cursor: Cursor,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[EventPublic]:
    """Newest first. Pass `next_cursor` back as `cursor` for the next page."""
    where = queries.EventFilter(device_id, kind, since, until)
    rows, next_cursor = queries.list_events(session, principal.org_id, where, cursor, limit)
    return Page[EventPublic](items=[EventPublic.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{event_id}")
def read_event(event_id: IdPath, principal: CurrentUser, session: SessionDep) -> EventPublic:
    row = queries.get_event(session, principal.org_id, event_id)
    if row is None:
        raise NotFoundError(f"no event {event_id}")
    return EventPublic.model_validate(row)
