"""Alarm pieces shared by the alarms list, one alarm's page and the fleet's alarm strip: the state
and severity in an icon and words, the data one alarm's page needs, and acknowledge/clear."""

from dataclasses import dataclass

from nicegui import ui
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from edgefleet.dashboard.insight import AlarmWhy, alarm_whys
from edgefleet.dashboard.layout import ago
from edgefleet.dashboard.session import Viewer, in_db, principal_of
from edgefleet.dashboard.theme import state_chip
from edgefleet.server.context import ServerContext
from edgefleet.server.db.models import Alarm, Device, User
from edgefleet.server.schemas import AlarmPublic
from edgefleet.server.services import alarms

SEVERITY = {"critical": ("alarm", "critical"), "warning": ("warning", "warning"), "info": ("cleared", "info")}


def alarm_href(alarm_id: int) -> str:
    """One alarm's page: where a notification links to."""
    return f"/alarms/{alarm_id}"


def state_of(alarm: AlarmPublic) -> str:
    if alarm.cleared_at is not None:
        return "cleared"
    return "acknowledged" if alarm.acked_at is not None else "open"


def alarm_state_chip(alarm: AlarmPublic) -> None:
    state = state_of(alarm)
    chip = {"open": ("alarm", "open alarm"), "acknowledged": ("acknowledged", "acknowledged")}
    look, words = chip.get(state, ("cleared", "cleared"))
    state_chip(look, words).props["data-alarm-state"] = state


def severity_chip(severity: str) -> None:
    look, words = SEVERITY.get(severity, ("cleared", severity))
    state_chip(look, words).props('data-testid="severity"')


@dataclass(frozen=True)
class AlarmDetail:
    alarm: AlarmPublic
    device_name: str
    device_kind: str
    device_online: bool
    why: AlarmWhy | None
    acked_by: str | None
    cleared_by: str | None


def load_detail(session: Session, org_id: int, alarm_id: int) -> AlarmDetail | None:
    """One alarm of the organization with its device and why; None when there is none (or it is
    another organization's: the same answer)."""
    row = session.get(Alarm, alarm_id)
    if row is None or row.org_id != org_id:
        return None
    device = session.get(Device, row.device_id)
    emails = {
        u.id: u.email
        for u in session.scalars(select(User).where(User.id.in_([row.acked_by or 0, row.cleared_by or 0])))
    }
    return AlarmDetail(
        alarm=AlarmPublic.model_validate(row),
        device_name=device.name if device else row.device_id,
        device_kind=device.kind if device else "",
        device_online=bool(device and device.online),
        why=alarm_whys(session, org_id, [row.id]).get(row.id),
        acked_by=emails.get(row.acked_by or 0),
        cleared_by=emails.get(row.cleared_by or 0),
    )


@dataclass(frozen=True)
class OpenAlarm:
    alarm: AlarmPublic
    device_name: str


def open_alarms(session: Session, org_id: int, limit: int) -> tuple[list[OpenAlarm], int]:
    """The newest open (unacknowledged) alarms and how many there are in all."""
    rows = alarms.list_alarms(session, org_id, "open", None, limit)
    ids = [a.device_id for a in rows]
    query = select(Device.id, Device.name).where(Device.org_id == org_id, Device.id.in_(ids))
    names = {device_id: name for device_id, name in session.execute(query)}
    total = session.scalar(
        select(func.count())
        .select_from(Alarm)
        .where(Alarm.org_id == org_id, Alarm.cleared_at.is_(None), Alarm.acked_at.is_(None))
    )
    items = [OpenAlarm(AlarmPublic.model_validate(a), names.get(a.device_id, a.device_id)) for a in rows]
    return items, int(total or 0)


def alarm_strip(items: list[OpenAlarm], total: int) -> None:
    """The fleet page's first block when something is wrong: each open alarm one tap from its page."""
    if not items:
        return
    card = ui.card().classes("w-full p-0 gap-0 ef-banner-alarm").props('data-testid="alarm-strip"')
    with card.props('role="region" aria-label="Open alarms"'):
        with ui.row().classes("w-full items-center justify-between px-3 pt-2 pb-1"):
            with ui.row().classes("items-center gap-2 no-wrap"):
                ui.icon("error", size="sm").classes("ef-alarm-text").props('aria-hidden="true"')
                ui.label(f"{total} open alarm{'s' if total != 1 else ''}").classes("font-semibold")
            ui.link("All alarms", "/alarms").classes("text-sm")
        for item in items:
            alarm = item.alarm
            link = ui.link(target=alarm_href(alarm.id)).classes(
                "w-full flex items-center gap-3 px-3 py-2 no-underline border-t ef-line"
            )
            link.props.update({"data-testid": "strip-alarm", "data-alarm-id": str(alarm.id)})
            with link:
                ui.icon("chevron_right").props('aria-hidden="true"')
                with ui.column().classes("gap-0 min-w-0"):
                    ui.label(f"{alarm.kind} · {item.device_name}").classes("font-semibold truncate")
                    ui.label(f"{alarm.severity} · opened {ago(alarm.opened_at)}").classes("text-xs ef-muted")


async def act(context: ServerContext, viewer: Viewer, alarm_id: int, action: str, note: str) -> AlarmPublic:
    """Acknowledge or clear as the viewer (re-checked: roles change), then tell the live stream."""

    def work(session: Session) -> AlarmPublic:
        principal = principal_of(session, viewer)
        change = alarms.acknowledge if action == "acknowledge" else alarms.clear
        return AlarmPublic.model_validate(change(session, principal, alarm_id, note.strip() or None))

    public = await in_db(context, work)
    change = "acknowledged" if action == "acknowledge" else "cleared"
    context.hub.publish(viewer.org_id, "alarm", {"change": change, **public.model_dump(mode="json")})
    return public
