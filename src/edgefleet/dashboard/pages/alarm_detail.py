"""One alarm, for the technician a notification sends here (`/alarms/{id}`): what and where first,
why (the explanation of its latest event), the device's score around it, and acknowledge with a
note in two taps (the note field, then the button), on a phone as on a desktop."""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui
from sqlalchemy.orm import Session

from edgefleet.contracts import utc_now
from edgefleet.dashboard import charts
from edgefleet.dashboard.guard import signed_in
from edgefleet.dashboard.layout import ago, frame, stamp, text
from edgefleet.dashboard.pages.alarm_views import (
    AlarmDetail,
    act,
    alarm_state_chip,
    load_detail,
    severity_chip,
)
from edgefleet.dashboard.pages.event_views import explanation_block, report_block
from edgefleet.dashboard.queries import alarm_spans, telemetry_since
from edgefleet.dashboard.session import Viewer, in_db
from edgefleet.dashboard.theme import state_chip
from edgefleet.server.context import ServerContext
from edgefleet.server.errors import ServerError

CONTEXT_BEFORE = timedelta(hours=2)
"""How much of the device's score before the alarm its chart shows."""
CONTEXT_MAX = timedelta(hours=24)
Submit = Callable[[str, str], Awaitable[None]]


def register(context: ServerContext) -> None:
    @ui.page("/alarms/{alarm_id}")
    async def alarm_page(request: Request, alarm_id: str) -> RedirectResponse | None:
        viewer = await signed_in(context, request)
        if isinstance(viewer, RedirectResponse):
            return viewer
        await _render(context, viewer, int(alarm_id) if alarm_id.isdigit() else -1)
        return None


def _score_option(session: Session, org_id: int, detail: AlarmDetail) -> dict[str, object] | None:
    """The device's anomaly score from a while before the alarm until now (at most a day)."""
    if detail.device_kind != "vibration":
        return None
    now = utc_now()
    start = max(detail.alarm.opened_at - CONTEXT_BEFORE, now - CONTEXT_MAX)
    rows = telemetry_since(session, org_id, detail.alarm.device_id, start)
    if not rows:
        return None
    points = [
        (r.ts, r.score_p95, r.score_max, r.data.get("threshold") if isinstance(r.data, dict) else None)
        for r in rows
    ]
    return charts.score_chart(points, alarm_spans(session, org_id, detail.alarm.device_id, start), now)


async def _render(context: ServerContext, viewer: Viewer, alarm_id: int) -> None:
    with frame(viewer, f"Alarm {alarm_id}" if alarm_id >= 0 else "Alarm"):
        body = ui.column().classes("w-full gap-3")
        ui.link("All alarms", "/alarms").classes("text-sm")

    async def refresh() -> None:
        def load(session: Session) -> tuple[AlarmDetail | None, dict[str, object] | None]:
            detail = load_detail(session, viewer.org_id, alarm_id)
            return detail, _score_option(session, viewer.org_id, detail) if detail else None

        detail, option = await in_db(context, load)
        body.clear()
        with body:
            if detail is None:
                ui.label(f"There is no alarm {alarm_id} in your organization.").props(
                    'data-testid="not-found"'
                )
                return
            _summary(detail)
            _actions(detail, viewer, submit)
            if option:
                ui.echart(option).classes("w-full h-64 sm:h-80").props('data-testid="score-chart"')

    async def submit(action: str, note: str) -> None:
        try:
            await act(context, viewer, alarm_id, action, note)
        except ServerError as err:
            ui.notify(str(err), type="negative")
            return
        ui.notify(f"alarm {alarm_id} {action}d", type="positive")
        await refresh()

    await refresh()


def _summary(detail: AlarmDetail) -> None:
    alarm = detail.alarm
    card = ui.card().classes("w-full p-3 sm:p-4 gap-2").props('data-testid="alarm-detail"')
    card.props["data-alarm-id"] = str(alarm.id)
    with card:
        with ui.row().classes("items-center gap-2"):
            alarm_state_chip(alarm)
            severity_chip(alarm.severity)
        text("h2", f"{alarm.kind} on {detail.device_name}").classes("text-lg font-semibold m-0")
        with ui.row().classes("items-center gap-2"):
            device = ui.link(target=f"/devices/{quote(alarm.device_id, safe='')}").props(
                'data-testid="device-link"'
            )
            with device:
                ui.label(f"Open device {alarm.device_id}").classes("ef-mono")
            state_chip("online" if detail.device_online else "offline")
        ui.label(
            f"opened {ago(alarm.opened_at)} ({stamp(alarm.opened_at)} UTC) · {alarm.event_count} events · "
            f"last {ago(alarm.last_event_at)}"
        ).classes("text-sm ef-muted")
        why = detail.why
        if why is not None and why.explanation is not None:
            ui.label("Why").classes("text-sm font-semibold mt-1")
            explanation_block(why.explanation)
        elif why is not None and why.report is not None:
            ui.label("Why").classes("text-sm font-semibold mt-1")
            report_block(why.report)
        if alarm.acked_at:
            who = f" by {detail.acked_by}" if detail.acked_by else ""
            ui.label(f"Acknowledged {ago(alarm.acked_at)}{who}").classes("text-sm font-semibold").props(
                'data-testid="acked"'
            )
        if alarm.cleared_at:
            who = f" by {detail.cleared_by}" if detail.cleared_by else ""
            ui.label(f"Cleared {ago(alarm.cleared_at)}{who} ({alarm.clear_reason})").classes("text-sm")
        if alarm.note:
            ui.label(f"Note: {alarm.note}").classes("text-sm").props('data-testid="alarm-note"')


def _actions(detail: AlarmDetail, viewer: Viewer, submit: Submit) -> None:
    alarm = detail.alarm
    if alarm.cleared_at is not None:
        return
    if not viewer.can("admin"):
        ui.label("An admin of your organization can acknowledge or clear this alarm.").classes("ef-muted")
        return
    with ui.card().classes("w-full p-3 sm:p-4 gap-2").props('data-testid="alarm-actions"'):
        note = ui.textarea("Note (optional): what you found, what you did").classes("w-full")
        note.props('outlined autogrow data-testid="note"')
        with ui.row().classes("w-full gap-2"):
            if alarm.acked_at is None:
                ui.button(
                    "Acknowledge", icon="task_alt", on_click=lambda: submit("acknowledge", note.value or "")
                ).props('unelevated no-caps size=lg data-testid="ack"').classes("grow sm:grow-0")
            ui.button("Clear", icon="done_all", on_click=lambda: submit("clear", note.value or "")).props(
                'outline no-caps size=lg data-testid="clear"'
            ).classes("grow sm:grow-0")
