"""Alarms: open, acknowledged, cleared, each with why (the latest event's explanation or commissioning
report); acknowledge and clear with a note (admins)."""

from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui
from sqlalchemy.orm import Session

from edgefleet.dashboard.guard import signed_in
from edgefleet.dashboard.insight import AlarmWhy, alarm_whys
from edgefleet.dashboard.layout import frame, stamp
from edgefleet.dashboard.pages.alarm_views import act, alarm_href, alarm_state_chip, severity_chip
from edgefleet.dashboard.pages.event_views import explanation_block, report_block
from edgefleet.dashboard.session import Viewer, in_db
from edgefleet.server.context import ServerContext
from edgefleet.server.errors import ServerError
from edgefleet.server.schemas import AlarmPublic
from edgefleet.server.services import alarms
from edgefleet.server.services.alarms import AlarmState

STATES = {"open": "Open", "acknowledged": "Acknowledged", "cleared": "Cleared"}


def register(context: ServerContext) -> None:
    @ui.page("/alarms")
    async def alarms_page(request: Request) -> RedirectResponse | None:
        viewer = await signed_in(context, request)
        if isinstance(viewer, RedirectResponse):
            return viewer
        wanted = request.query_params.get("alarm", "")
        if wanted.isdigit():  # a notification's link (`/alarms?alarm=N`): that alarm's own page
            return RedirectResponse(alarm_href(int(wanted)), status_code=303)
        await _render(context, viewer)
        return None


async def _render(context: ServerContext, viewer: Viewer) -> None:
    state: dict[str, AlarmState] = {"tab": "open"}
    with frame(viewer, "Alarms"):
        toggle = ui.toggle(STATES, value="open").props('no-caps spread data-testid="alarm-state"')
        toggle.classes("w-full sm:w-auto").props('aria-label="Which alarms"')
        body = ui.column().classes("w-full gap-2")
        dialogs = ui.element("div")  # outside `body`: a refresh must not delete an open dialog
    busy = {"dialog": False}

    async def ask(alarm: AlarmPublic, action: str) -> None:
        with dialogs, ui.dialog() as dialog, ui.card().classes("w-full max-w-sm"):
            ui.label(f"{action.capitalize()} alarm {alarm.id} ({alarm.kind} on {alarm.device_id})").classes(
                "font-semibold"
            )
            note = (
                ui.textarea("Note (optional): what was found, what was done")
                .classes("w-full")
                .props('data-testid="note"')
            )
            with ui.row().classes("justify-end w-full"):
                ui.button("Cancel", on_click=dialog.close).props("flat no-caps")
                ui.button(action.capitalize(), on_click=lambda: dialog.submit(note.value or "")).props(
                    "unelevated no-caps"
                ).props('data-testid="confirm"')
        busy["dialog"] = True
        try:
            text = await dialog
        finally:
            busy["dialog"] = False
            dialog.delete()
        if text is None:
            return
        try:
            await act(context, viewer, alarm.id, action, str(text))
        except ServerError as err:
            ui.notify(str(err), type="negative")
            return
        ui.notify(f"alarm {alarm.id} {action}d", type="positive")
        await refresh()

    async def refresh() -> None:
        tab: AlarmState = state["tab"]
        rows, whys = await in_db(context, lambda s: _load(s, viewer.org_id, tab))
        body.clear()
        with body:
            if not rows:
                ui.label(f"No {tab} alarms.").classes("ef-muted").props('data-testid="no-alarms"')
            for alarm in rows:
                _alarm_card(alarm, viewer, ask, whys.get(alarm.id))

    async def refresh_unless_busy() -> None:
        if not busy["dialog"]:
            await refresh()

    async def on_tab(value: Any) -> None:
        state["tab"] = value
        await refresh()

    toggle.on_value_change(lambda e: on_tab(e.value))
    await refresh()
    ui.timer(10.0, refresh_unless_busy, immediate=False)


def _load(session: Session, org_id: int, tab: AlarmState) -> tuple[list[AlarmPublic], dict[int, AlarmWhy]]:
    rows = [AlarmPublic.model_validate(a) for a in alarms.list_alarms(session, org_id, tab, None, 200)]
    return rows, alarm_whys(session, org_id, [a.id for a in rows])


def _alarm_card(alarm: AlarmPublic, viewer: Viewer, ask: Any, why: AlarmWhy | None) -> None:
    card = ui.card().classes("w-full p-3 gap-2")
    card.props.update({"data-alarm-id": str(alarm.id), "data-testid": "alarm-card"})
    with card:
        with ui.row().classes("w-full items-center gap-2"):
            alarm_state_chip(alarm)
            severity_chip(alarm.severity)
            ui.link(f"{alarm.kind} alarm {alarm.id}", alarm_href(alarm.id)).classes("font-semibold").props(
                'data-testid="alarm-link"'
            )
        with ui.row().classes("w-full items-center gap-x-3 gap-y-0 text-sm"):
            ui.link(alarm.device_id, f"/devices/{quote(alarm.device_id, safe='')}").classes("ef-mono")
            opened, last = stamp(alarm.opened_at), stamp(alarm.last_event_at)
            ui.label(f"opened {opened} · {alarm.event_count} events · last {last}").classes("ef-muted")
        details = []
        if alarm.acked_at:
            details.append(f"acknowledged {stamp(alarm.acked_at)}")
        if alarm.cleared_at:
            details.append(f"cleared {stamp(alarm.cleared_at)} ({alarm.clear_reason})")
        if alarm.note:
            details.append(f"note: {alarm.note}")
        if why is not None and why.explanation is not None:
            explanation_block(why.explanation)
        elif why is not None and why.report is not None:
            report_block(why.report)
        if details:
            ui.label(" · ".join(details)).classes("text-sm ef-muted")
        if viewer.can("admin") and alarm.cleared_at is None:
            with ui.row().classes("w-full gap-2"):
                if alarm.acked_at is None:
                    ui.button(
                        "Acknowledge", icon="task_alt", on_click=lambda a=alarm: ask(a, "acknowledge")
                    ).props('unelevated no-caps data-testid="ack"').classes("grow sm:grow-0")
                ui.button("Clear", icon="done_all", on_click=lambda a=alarm: ask(a, "clear")).props(
                    'outline no-caps data-testid="clear"'
                ).classes("grow sm:grow-0")
