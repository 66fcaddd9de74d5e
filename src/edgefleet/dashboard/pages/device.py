"""Device detail: score with threshold and alarm spans, detections, telemetry, events, commands."""

from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui
from sqlalchemy.orm import Session

from edgefleet.contracts import utc_now
from edgefleet.dashboard import charts
from edgefleet.dashboard.guard import signed_in
from edgefleet.dashboard.insight import CommissioningState, commissioning_states
from edgefleet.dashboard.layout import ago, frame, stamp
from edgefleet.dashboard.pages.camera_view import camera_view, presence
from edgefleet.dashboard.pages.event_views import commissioning_banner, events_table
from edgefleet.dashboard.queries import DriftHistory, alarm_spans, drift_history, since, telemetry_since
from edgefleet.dashboard.session import Viewer, in_db, principal_of
from edgefleet.dashboard.theme import state_chip
from edgefleet.server.context import ServerContext
from edgefleet.server.db.models import EventRow
from edgefleet.server.errors import ServerError
from edgefleet.server.schemas import CommandCreate, DevicePublic, EventPublic
from edgefleet.server.services import devices, queries
from edgefleet.server.services.drift import DriftLimits
from edgefleet.server.services.queries import EventFilter

RANGES = {1: "last hour", 6: "last 6 h", 24: "last 24 h", 168: "last 7 days"}
COMMANDS = (
    ("recommission", "Re-commission", "Learn this machine's normal again (after a move or a repair)"),
    ("reset_network", "Reset network settings", "Forget Wi-Fi and credentials; back to provisioning"),
    ("reboot", "Reboot", "Restart the device"),
    ("publish_status", "Ask for status", "The device re-publishes its retained status"),
)


def _history(session: Session, org_id: int, device_id: str, kind: str, hours: float) -> dict[str, Any]:
    start = since(hours)
    rows = telemetry_since(session, org_id, device_id, start)
    telemetry = [
        {
            "ts": r.ts,
            "p95": r.score_p95,
            "max": r.score_max,
            "threshold": r.data.get("threshold") if isinstance(r.data, dict) else None,
            "inference_us": r.inference_us,
            "rejected": sum((r.data.get("rejected") or {}).values()) if isinstance(r.data, dict) else 0,
            "outbox": r.outbox_depth,
            "outbox_errors": r.data.get("outbox_errors", 0) if isinstance(r.data, dict) else 0,
            "outbox_dropped": r.data.get("outbox_dropped", 0) if isinstance(r.data, dict) else 0,
            "drift": r.drift,
            "detections": r.detections_per_hour,
        }
        for r in rows
    ]
    events, _ = queries.list_events(session, org_id, EventFilter(device_id=device_id), None, 50)
    commissioning = commissioning_states(session, org_id, [device_id]).get(device_id)
    return {
        "telemetry": telemetry,
        "spans": alarm_spans(session, org_id, device_id, start),
        "events": [EventPublic.model_validate(e) for e in events],
        "commissioning": commissioning,
        "threshold": _threshold_in_force(commissioning, events),
        "presence": presence(session, org_id, device_id, start) if kind == "camera" else None,
    }


def _threshold_in_force(commissioning: CommissioningState | None, events: list[EventRow]) -> float | None:
    """For the score chart when telemetry carries no threshold: commissioning's, else the last event's."""
    if commissioning is not None and commissioning.report is not None:
        return commissioning.report.threshold
    return next((e.threshold for e in events if e.kind == "anomaly" and e.threshold), None)


def _series(telemetry: list[dict[str, Any]], key: str) -> list[tuple[datetime, float]]:
    return [(t["ts"], float(t[key])) for t in telemetry if t[key] is not None]


def register(context: ServerContext) -> None:
    @ui.page("/devices/{device_id}")
    async def device_page(request: Request, device_id: str) -> RedirectResponse | None:
        viewer = await signed_in(context, request)
        if isinstance(viewer, RedirectResponse):
            return viewer
        try:
            device = await in_db(
                context,
                lambda s: DevicePublic.model_validate(devices.get_device(s, viewer.org_id, device_id)),
            )
        except ServerError:
            with frame(viewer, "Device not found"):
                ui.label(f"There is no device {device_id!r} in your organization.").props(
                    'data-testid="not-found"'
                )
                ui.link("Back to the fleet", "/")
            return None
        await _render(context, viewer, device)
        return None


def _header(device: DevicePublic) -> None:
    """State first (an icon and a word), then the facts, two to a row on a phone."""
    state = "revoked" if device.revoked_at else ("online" if device.online else "offline")
    with ui.card().classes("w-full p-3 sm:p-4 gap-3"):
        with ui.row().classes("items-center gap-2"):
            state_chip(state).props('data-testid="device-state"')
            ui.label(f"last seen {ago(device.last_seen)}").classes("text-sm ef-muted")
        facts = (
            ("Id", device.id),
            ("Kind", device.kind),
            ("State", state),
            ("Last seen", f"{stamp(device.last_seen)} ({ago(device.last_seen)})"),
            ("Mode", device.mode or "not reported"),
            ("Firmware", device.firmware_version or "-"),
            ("Model", f"{device.model_id or '-'} {device.model_version or ''}"),
            ("OTA", device.ota_state or "-"),
        )
        with ui.element("div").classes("grid grid-cols-2 sm:grid-cols-4 gap-x-6 gap-y-2 w-full"):
            for label, value in facts:
                with ui.column().classes("gap-0 min-w-0"):
                    ui.label(label).classes("text-xs ef-muted")
                    fact = ui.label(value).classes("text-sm break-words")
                    fact.props["data-testid"] = f"fact-{label.lower().replace(' ', '-')}"


async def _render(context: ServerContext, viewer: Viewer, device: DevicePublic) -> None:
    state = {"hours": 6}
    limits = DriftLimits.from_settings(context.settings)
    with frame(viewer, device.name):
        _header(device)
        with ui.row().classes("items-center gap-3"):
            span = ui.select(RANGES, value=6, label="Time range").props("outlined dense").classes("w-40")
            if viewer.can("admin"):
                _command_buttons(context, viewer, device)
        banner_box = ui.column().classes("w-full gap-2")
        charts_box = ui.column().classes("w-full gap-4")
        with ui.card().classes("w-full"):
            ui.label("Recent events").classes("font-semibold")
            events_box = ui.column().classes("w-full")

    async def refresh() -> None:
        data = await in_db(
            context, lambda s: _history(s, viewer.org_id, device.id, device.kind, state["hours"])
        )
        drift = await in_db(
            context, lambda s: drift_history(s, viewer.org_id, device.id, since(state["hours"]), limits)
        )
        telemetry = data["telemetry"]
        banner_box.clear()
        with banner_box:
            commissioning_banner(data["commissioning"])
            _outbox_errors_line(telemetry[-1] if telemetry else None)
        charts_box.clear()
        with charts_box:
            if device.kind == "camera":
                camera_view(data["presence"], telemetry)
            else:
                points = [(t["ts"], t["p95"], t["max"], t["threshold"]) for t in telemetry]
                option = charts.score_chart(points, data["spans"], utc_now(), threshold=data["threshold"])
                ui.echart(option).classes("w-full h-72 sm:h-80").props('data-testid="score-chart"')
            with ui.element("div").classes("grid grid-cols-1 lg:grid-cols-2 gap-4 w-full"):
                for title, unit, key in (
                    ("Inference time", "µs per window", "inference_us"),
                    ("Rejected readings", "readings per interval", "rejected"),
                    ("Outbox depth", "messages waiting", "outbox"),
                ):
                    option = charts.series_chart(title, unit, {title: _series(telemetry, key)})
                    ui.echart(option).classes("w-full h-56")
            if device.kind != "camera":
                _drift_section(drift)
            if not telemetry:
                ui.label("No telemetry in this range yet.").classes("ef-muted")
        events_box.clear()
        with events_box:
            events_table(data["events"])

    async def on_range(hours: int) -> None:
        state["hours"] = hours
        await refresh()

    span.on_value_change(lambda e: on_range(int(e.value)))
    await refresh()
    ui.timer(15.0, refresh, immediate=False)


def _outbox_errors_line(last: dict[str, Any] | None) -> None:
    """The device's outbox disk failed (full, read-only, I/O error) at some point: say so."""
    if last is None or not last["outbox_errors"]:
        return
    ui.label(
        f"Outbox storage errors on the device: {last['outbox_errors']} (disk full, read-only or I/O "
        f"error); {last['outbox_dropped']} messages dropped in all"
    ).classes("text-sm text-negative").props('data-testid="outbox-errors"')


def _command_buttons(context: ServerContext, viewer: Viewer, device: DevicePublic) -> None:
    async def send(command: str, label: str) -> None:
        def work(session: Session) -> Any:
            principal = principal_of(session, viewer)
            create = CommandCreate.model_validate({"command": command})
            return devices.build_command(session, principal, device.id, create)

        try:
            if context.publish_command is None:
                raise ServerError("this server has no MQTT connection")
            built = await in_db(context, work)
            context.publish_command(built)
        except ServerError as err:
            ui.notify(f"{label}: {err}", type="negative")
            return
        ui.notify(f"{label}: sent (command {built.command_id})", type="positive")

    with ui.button("Commands", icon="send").props("outline no-caps"), ui.menu():
        for command, label, hint in COMMANDS:
            if device.kind == "vibration" and command == "reset_network":
                continue
            if device.kind == "camera" and command == "recommission":
                continue
            item = ui.menu_item(on_click=lambda c=command, lab=label: send(c, lab))
            with item, ui.column().classes("gap-0"):
                ui.label(label)
                ui.label(hint).classes("text-xs ef-muted")


def _drift_section(history: DriftHistory) -> None:
    """Drift per model version against the model card (server/services/drift.py)."""
    with ui.card().classes("w-full").props('data-testid="drift-section"'):
        with ui.row().classes("items-center gap-3"):
            ui.label("Drift").classes("font-semibold")
            current = history.state
            if current is not None:
                drifting = current.state == "drifting"
                ui.badge(current.state, color="negative" if drifting else "positive").props(
                    'data-testid="drift-state"'
                )
                value = "-" if current.drift is None else f"{current.drift:.2f} σ"
                score = (
                    "score p95 not compared (no model card score stats)"
                    if current.p95_ratio is None
                    else f"score p95 {current.p95_ratio:.2f}x the card's"
                )
                detail = f"{current.model_id or 'model'} {current.model_version}: drift {value}, {score}"
                if drifting and current.reason:
                    detail += f"; out of limit ({current.reason}) since {stamp(current.out_since)}"
                ui.label(detail).classes("text-sm ef-muted")
        if not history.series:
            ui.label("No telemetry with a model version in this range.").classes("ef-muted")
            return
        with ui.element("div").classes("grid grid-cols-1 lg:grid-cols-2 gap-4 w-full"):
            ui.echart(charts.drift_chart(history.series)).classes("w-full h-64").props(
                'data-testid="drift-chart"'
            )
            ui.echart(charts.drift_score_chart(history.series)).classes("w-full h-64")
