"""Live event log: the latest events from the database, then new ones pushed from the server's
real-time hub over the page's WebSocket (an event is shown once, whichever way it came).

An anomaly shows why (fault hint, largest deviations, ISO zone), a commissioning event its report.
Newest first, filter by kind and device, pause/resume, and a bounded buffer: at most BUFFER events
are kept (and shown), so a busy fleet cannot grow the page without limit.
"""

import asyncio
import logging
from collections import deque
from datetime import datetime
from typing import Any
from urllib.parse import quote

from nicegui import background_tasks, ui

from edgefleet.contracts import EVENT_KINDS
from edgefleet.dashboard.explain import event_why, number
from edgefleet.dashboard.guard import signed_in_page
from edgefleet.dashboard.layout import frame
from edgefleet.dashboard.session import Viewer, in_db
from edgefleet.server.context import ServerContext
from edgefleet.server.hub import Subscription
from edgefleet.server.schemas import EventPublic
from edgefleet.server.services import queries
from edgefleet.server.services.queries import EventFilter

log = logging.getLogger(__name__)
BUFFER = 200
INITIAL = 50
BATCH_S = 0.1


def _as_row(event: dict[str, Any]) -> dict[str, Any]:
    """A stored event in the shape the hub streams: small (no window, features or thumbnail), with its
    explanation or commissioning report at the top level."""
    row = {k: v for k, v in event.items() if k != "data"}
    data = event.get("data")
    if isinstance(data, dict):
        row.update({k: data[k] for k in ("explanation", "commissioning") if k in data})
    ts = row["ts"]
    row["ts"] = ts if isinstance(ts, str) else ts.isoformat()
    return row


def _time_of(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%H:%M:%S")
    except ValueError:
        return iso


_SEVERITY_COLOR = {"critical": "#dc2626", "warning": "#d97706", "info": "#0284c7"}  # with the word
_INDENT = " " * 10
_ROW_CLASSES = "w-full ef-mono text-xs px-2 py-1 border-b ef-line no-underline ef-cardlink"


def row_text(event: dict[str, Any]) -> str:
    """The row as plain text: a head line, then the fault hint, largest deviations and ISO zone of an
    anomaly (or a commissioning report), indented. Rendered as text, never as HTML."""
    head = (
        f"{_time_of(event['ts']):<8}  {event['device_id']:<20}  {event['kind']:<13}  "
        f"{event['severity']:<8}  {'raised' if event['active'] else 'cleared':<7}  {_describe(event)}"
    )
    return "\n".join([head.rstrip(), *(_INDENT + line for line in event_why(event))])


def _describe(event: dict[str, Any]) -> str:
    explained = event.get("explanation") is not None  # its lines follow: the score says more than a summary
    if event.get("message") and not (explained and event.get("score") is not None):
        return str(event["message"])
    if event["kind"] == "person":
        return f"{event.get('person_count') or 1} person(s)"
    if event.get("score") is not None:
        return f"score {number(event['score'])} (threshold {number(event.get('threshold') or 0)})"
    return str(event.get("reason") or "")


class LiveLog:
    def __init__(self, container: ui.element, status: ui.label) -> None:
        self.container = container
        self.status = status
        self.buffer: deque[dict[str, Any]] = deque(maxlen=BUFFER)
        self.shown: deque[ui.element] = deque()
        self.seen: set[int] = set()
        self.paused = False
        self.missed = 0
        self.kind = "all"
        self.device = ""

    def matches(self, event: dict[str, Any]) -> bool:
        kind_ok = self.kind == "all" or event["kind"] == self.kind
        device_ok = not self.device or self.device.lower() in str(event["device_id"]).lower()
        return kind_ok and device_ok

    def add(self, event: dict[str, Any]) -> None:
        if event["id"] in self.seen:
            return
        if len(self.buffer) == self.buffer.maxlen:
            self.seen.discard(self.buffer[0]["id"])
        self.buffer.append(event)
        self.seen.add(event["id"])
        if self.paused:
            self.missed += 1
            self.status.text = f"paused · {self.missed} new events held (the newest {BUFFER} are kept)"
        elif self.matches(event):
            self._show(event)

    def _show(self, event: dict[str, Any]) -> None:
        # One element per row (not six): the browser redraws the log on every update it receives.
        # A link whose text is the whole row: device strings stay text, never HTML.
        device_id = str(event["device_id"])
        color = _SEVERITY_COLOR.get(str(event["severity"]), "#64748b")
        with self.container:
            row = ui.link(row_text(event), f"/devices/{quote(device_id, safe='')}").classes(_ROW_CLASSES)
            row.style(f"white-space: pre-wrap; border-left: 4px solid {color}")
        row.props.update(
            {"data-event-id": str(event["id"]), "data-device": device_id, "data-seq": str(event["seq"])}
        )
        row.move(target_index=0)
        self.shown.append(row)
        while len(self.shown) > BUFFER:
            self.container.remove(self.shown.popleft())

    def redraw(self) -> None:
        self.container.clear()
        self.shown.clear()
        for event in self.buffer:
            if self.matches(event):
                self._show(event)
        self.status.text = "paused" if self.paused else "live"


def register(context: ServerContext) -> None:
    signed_in_page(context, "/live", _render)


async def _render(context: ServerContext, viewer: Viewer) -> None:
    subscription = context.hub.subscribe(viewer.org_id)  # before the initial load: nothing slips through
    with frame(viewer, "Live event log"):
        with ui.row().classes("items-center gap-3"):
            kinds = {"all": "all kinds", **{k: k for k in EVENT_KINDS}}
            kind = ui.select(kinds, value="all", label="Kind").props("outlined dense").classes("w-40")
            device = ui.input("Device").props("outlined dense clearable debounce=200").classes("w-40 sm:w-48")
            pause = ui.button("Pause", icon="pause").props("outline no-caps").props('data-testid="pause"')
            status = (
                ui.label("live").classes("text-sm ef-muted").props('data-testid="live-status" role="status"')
            )
        with ui.card().classes("w-full p-0"):
            container = ui.column().classes("w-full gap-0").props('data-testid="live-log"')
    live = LiveLog(container, status)

    initial, _ = await in_db(
        context, lambda s: queries.list_events(s, viewer.org_id, EventFilter(), None, INITIAL)
    )
    for row in reversed(initial):
        live.add(_as_row(EventPublic.model_validate(row).model_dump(mode="json")))

    def on_filter(kind_value: str | None = None, device_value: str | None = None) -> None:
        if kind_value is not None:
            live.kind = kind_value
        if device_value is not None:
            live.device = device_value
        live.redraw()

    def toggle() -> None:
        live.paused = not live.paused
        live.missed = 0
        pause.text = "Resume" if live.paused else "Pause"
        pause.props["icon"] = "play_arrow" if live.paused else "pause"
        live.redraw()

    kind.on_value_change(lambda e: on_filter(kind_value=e.value))
    device.on_value_change(lambda e: on_filter(device_value=e.value or ""))
    pause.on_click(toggle)

    task = background_tasks.create(_consume(subscription, live), name="live-log")

    def stop() -> None:
        context.hub.unsubscribe(subscription)
        task.cancel()

    ui.context.client.on_delete(stop)


async def _consume(subscription: Subscription, live: LiveLog) -> None:
    """Apply what arrives in batches: one update to the browser per BATCH_S, not one per event
    (at 200 events/s, per-event updates kept the browser busy redrawing and it fell seconds behind)."""
    try:
        while True:
            items = [await subscription.queue.get()]
            await asyncio.sleep(BATCH_S)
            while not subscription.queue.empty():
                items.append(subscription.queue.get_nowait())
            for item in items:
                if item is None:
                    live.status.text = "fell behind the server's stream; reload the page"
                    return
                if item.type == "event":
                    live.add(item.data)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("live log consumer failed")
