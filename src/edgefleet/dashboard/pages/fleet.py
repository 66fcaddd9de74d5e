"""Fleet: open alarms first, then a card per device (state and alarm first, versions, sparkline);
search, filter, pages. One column of cards on a phone, up to four on a wide screen."""

from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from nicegui import ui

from edgefleet.contracts import utc_now
from edgefleet.dashboard.charts import sparkline_svg
from edgefleet.dashboard.guard import signed_in_page
from edgefleet.dashboard.layout import ago, frame
from edgefleet.dashboard.pages.alarm_views import OpenAlarm, alarm_strip, open_alarms
from edgefleet.dashboard.queries import DeviceCard, FleetPage, FleetQuery, fleet_page
from edgefleet.dashboard.session import Viewer, in_db
from edgefleet.dashboard.theme import state_chip
from edgefleet.server.context import ServerContext
from edgefleet.server.services import queries

REFRESH_S = 5.0
STRIP_ALARMS = 3
"""Open alarms listed above the fleet (the rest are one tap away on the alarms page)."""
COMMISSIONING_FLAG = {
    "blind": ("visibility_off", "BLIND: cannot see its trained faults", "ef-alarm-text"),
    "noisy_baseline": ("graphic_eq", "NOISY BASELINE: faults may hide", "ef-warn-text"),
}
STATE_FILTER = {"all": "any state", "online": "online", "offline": "offline", "alarm": "with open alarm"}
MODE_LABEL = {"commissioning": "commissioning", "running": "running", "degraded": "degraded (no model)"}


def _card(card: DeviceCard) -> None:
    """State and alarm first (an icon and a word each), then which device, then the details."""
    link = ui.link(target=f"/devices/{quote(card.id, safe='')}").classes("ef-cardlink no-underline block")
    with link:
        box = ui.card().classes("ef-card w-full h-full gap-1 p-3")
    box.props.update({"data-device-id": card.id, "data-testid": "device-card"})
    with box:
        with ui.row().classes("w-full items-center gap-2"):
            if card.open_alarms:
                state_chip("alarm", f"{card.open_alarms} alarm{'s' if card.open_alarms > 1 else ''}")
            state = "revoked" if card.revoked else ("online" if card.online else "offline")
            state_chip(state)
            ui.label(f"seen {ago(card.last_seen)}").classes("text-xs ef-muted")
        with ui.row().classes("w-full items-center gap-1 no-wrap"):
            ui.icon("photo_camera" if card.kind == "camera" else "vibration", size="sm").classes(
                "ef-muted"
            ).props('aria-hidden="true"')
            ui.label(card.name).classes("font-semibold truncate min-w-0")
        ui.label(
            f"{card.id} · {card.kind} · {MODE_LABEL.get(card.mode or '', card.mode or 'not reported')}"
        ).classes("text-xs ef-muted ef-mono truncate")
        _commissioning_flag(card.commissioning)
        ui.label(f"fw {card.firmware_version or '-'} · model {card.model_version or '-'}").classes(
            "text-xs ef-muted"
        )
        what = "detections per hour" if card.kind == "camera" else "anomaly score p95"
        ui.html(
            sparkline_svg(card.spark, label=f"{what}, last {len(card.spark)} reports"), sanitize=False
        ).classes("w-full")
        ui.label(what).classes("text-xs ef-muted")


def _commissioning_flag(status: str | None) -> None:
    """A blind or noisy device says so in words (and an icon), not only in colour."""
    if status not in COMMISSIONING_FLAG:
        return
    icon, text, color = COMMISSIONING_FLAG[status]
    flag = ui.row().classes(f"items-center gap-1 no-wrap text-xs font-semibold {color}")
    flag.props.update({"data-testid": "commissioning-flag", "data-status": status})
    with flag:
        ui.icon(icon, size="xs")
        ui.label(text)


def _overview_tiles(data: dict[str, Any]) -> None:
    """Five small tiles: three to a row on a phone, one row from a tablet up."""
    tiles = (
        ("Devices", f"{data['devices']}"),
        ("Online", f"{data['online']}"),
        ("Open alarms", f"{data['open_alarms']}"),
        ("Events (24 h)", f"{data['events']}"),
        ("Anomaly rate (24 h)", "-" if data["anomaly_rate"] is None else f"{data['anomaly_rate']:.2%}"),
    )
    with ui.element("div").classes("grid grid-cols-3 sm:grid-cols-5 gap-2 w-full"):
        for label, value in tiles:
            with ui.card().classes("ef-tile p-2 sm:p-3 gap-0"):
                ui.label(label).classes("text-xs ef-muted leading-tight")
                tile = ui.label(value).classes("text-lg sm:text-xl font-semibold")
                tile.props["data-testid"] = f"tile-{label.split()[0].lower()}"


def register(context: ServerContext) -> None:
    signed_in_page(context, "/", _render)


async def _render(context: ServerContext, viewer: Viewer) -> None:
    state = {"query": FleetQuery()}

    async def load() -> tuple[FleetPage, dict[str, Any], tuple[list[OpenAlarm], int]]:
        query = state["query"]
        now = utc_now()

        def work(session: Any) -> tuple[FleetPage, dict[str, Any], tuple[list[OpenAlarm], int]]:
            page = fleet_page(session, viewer.org_id, query)
            overview = queries.overview(session, viewer.org_id, now - timedelta(hours=24), now)
            return page, overview, open_alarms(session, viewer.org_id, STRIP_ALARMS)

        return await in_db(context, work)

    with frame(viewer, "Fleet"):
        strip = ui.element("div").classes("w-full")
        tiles = ui.element("div").classes("w-full")
        with ui.element("div").classes("grid grid-cols-2 sm:flex sm:flex-wrap items-center gap-2 w-full"):
            search = ui.input("Search name or id").props("outlined dense clearable debounce=300")
            search.classes("col-span-2 sm:w-64").props('data-testid="fleet-search"')
            kinds = {"all": "all kinds", "vibration": "vibration", "camera": "camera"}
            kind = ui.select(kinds, value="all", label="Kind").props("outlined dense").classes("sm:w-40")
            status = (
                ui.select(STATE_FILTER, value="all", label="State").props("outlined dense").classes("sm:w-48")
            )
            summary = ui.label().classes("col-span-2 text-sm ef-muted").props('data-testid="fleet-summary"')
        grid = ui.element("div").classes(
            "grid grid-cols-1 sm:grid-cols-2 lg:grid-cols-3 2xl:grid-cols-4 gap-3 w-full"
        )
        pager = ui.pagination(1, 1, direction_links=True).props("max-pages=5 boundary-numbers")
        pager.props('aria-label="Pages of devices"')

        async def refresh() -> None:
            page, overview, (alarm_items, alarm_total) = await load()
            strip.clear()
            with strip:
                alarm_strip(alarm_items, alarm_total)
            tiles.clear()
            with tiles:
                _overview_tiles(overview)
            grid.clear()
            with grid:
                for card in page.cards:
                    _card(card)
                if not page.cards:
                    ui.label("No devices match. Add one under 'Add device'.").classes("ef-muted")
            query = state["query"]
            first = (min(query.page, page.pages) - 1) * query.per_page
            summary.text = (
                f"{page.total} devices · showing {first + 1 if page.cards else 0}-{first + len(page.cards)}"
            )
            pager.max = page.pages
            pager.visible = page.pages > 1

        async def requery(**change: Any) -> None:
            state["query"] = replace(state["query"], **change)
            await refresh()

        search.on_value_change(lambda e: requery(search=e.value or "", page=1))
        kind.on_value_change(lambda e: requery(kind=e.value, page=1))
        status.on_value_change(lambda e: requery(state=e.value, page=1))
        pager.on_value_change(lambda e: requery(page=int(e.value)))
        await refresh()
        ui.timer(REFRESH_S, refresh, immediate=False)
