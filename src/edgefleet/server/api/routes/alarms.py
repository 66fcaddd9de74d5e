"""Alarms: list, acknowledge, clear (audit-logged)."""

from typing import Annotated

from fastapi import APIRouter, Query

from edgefleet.server.api.deps import AdminUser, AnnouncerDep, CurrentUser, IdPath, SessionDep
from edgefleet.server.schemas import AlarmNote, AlarmPublic
from edgefleet.server.services import alarms
from edgefleet.server.services.alarms import AlarmState

router = APIRouter(prefix="/alarms", tags=["alarms"])


@router.get("")
def list_alarms(
    principal: CurrentUser,
    session: SessionDep,
    state: AlarmState | None = None,
    device_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AlarmPublic]:
    rows = alarms.list_alarms(session, principal.org_id, state, device_id, limit)
    return [AlarmPublic.model_validate(a) for a in rows]


@router.post("/{alarm_id}/ack")
def acknowledge_alarm(
    alarm_id: IdPath,
    principal: AdminUser,
    session: SessionDep,
    announce: AnnouncerDep,
    body: AlarmNote | None = None,
) -> AlarmPublic:
    note = body.note if body else None
    public = AlarmPublic.model_validate(alarms.acknowledge(session, principal, alarm_id, note))
    announce.publish(principal.org_id, "alarm", {"change": "acknowledged", **public.model_dump(mode="json")})
    return public


@router.post("/{alarm_id}/clear")
def clear_alarm(
    alarm_id: IdPath,
    principal: AdminUser,
    session: SessionDep,
    announce: AnnouncerDep,
    body: AlarmNote | None = None,
) -> AlarmPublic:
    note = body.note if body else None
    public = AlarmPublic.model_validate(alarms.clear(session, principal, alarm_id, note))
    announce.publish(principal.org_id, "alarm", {"change": "cleared", **public.model_dump(mode="json")})
    return public
