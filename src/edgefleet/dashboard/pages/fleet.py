"""Fleet: a card per device with state, versions, open alarms and a sparkline; search, filter, pages."""

from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from nicegui import ui

from edgefleet.contracts import utc_now
from edgefleet.dashboard.charts import sparkline_svg
from edgefleet.dashboard.guard import signed_in_page
from edgefleet.dashboard.layout import ago, frame
from edgefleet.dashboard.queries import DeviceCard, FleetPage, FleetQuery, fleet_page
from edgefleet.dashboard.session import Viewer, in_db
from edgefleet.server.context import ServerContext
from edgefleet.server.services import queries

REFRESH_S = 5.0
COMMISSIONING_FLAG = {
    "blind": ("visibility_off", "BLIND: cannot see its trained faults", "text-red-700"),
    "noisy_baseline": ("graphic_eq", "NOISY BASELINE: faults may hide", "text-amber-700"),
}
MODE_LABEL = {"commissioning": "commissioning", "running": "running", "degraded": "degraded (no model)"}


def _card(card: DeviceCard) -> None:
    with ui.link(target=f"/devices/{quote(card.id, safe='')}").classes("no-underline text-inherit"):
        box = ui.card().classes("ef-card w-72 gap-1 p-3")
    box.props.update({"data-device-id": card.id, "data-testid": "device-card"})
    with box:
        with ui.row().classes("w-full items-center justify-between no-wrap"):
            with ui.row().classes("items-center gap-1 no-wrap"):
                ui.icon("photo_camera" if card.kind == "camera" else "vibration", size="sm").classes(
                    "text-slate-500"
                )
                ui.label(card.name).classes("font-semibold truncate max-w-40")
            if card.open_alarms:
                ui.badge(f"{card.open_alarms} alarm{'s' if card.open_alarms > 1 else ''}", color="negative")
        ui.label(card.id).classes("text-xs ef-muted ef-mono")
        with ui.row().classes("items-center gap-1"):
            color = "grey" if card.revoked else ("positive" if card.online else "grey-6")
            state = "revoked" if card.revoked else ("online" if card.online else "offline")
            ui.badge(state, color=color).props("outline" if not card.online else "")
            ui.label(f"seen {ago(card.last_seen)}").classes("text-xs ef-muted")
        ui.label(f"{card.kind} · {MODE_LABEL.get(card.mode or '', card.mode or 'not reported')}").classes(
            "text-xs"
        )
        _commissioning_flag(card.commissioning)
        ui.label(f"fw {card.firmware_version or '-'} · model {card.model_version or '-'}").classes(
            "text-xs ef-muted"
        )
        what = "detections per hour" if card.kind == "camera" else "anomaly score p95"
        ui.html(sparkline_svg(card.spark, label=f"{what}, last {len(card.spark)} reports"), sanitize=False)
        ui.label(what).classes("text-[10px] ef-muted")


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
    tiles = (
        ("Devices", f"{data['devices']}"),
        ("Online", f"{data['online']}"),
        ("Open alarms", f"{data['open_alarms']}"),
        ("Events (24 h)", f"{data['events']}"),
        ("Anomaly rate (24 h)", "-" if data["anomaly_rate"] is None else f"{data['anomaly_rate']:.2%}"),
    )
    with ui.row().classes("gap-3"):
        for label, value in tiles:
            with ui.card().classes("p-3 w-40 gap-0"):
                ui.label(label).classes("text-xs ef-muted")
                tile = ui.label(value).classes("text-xl font-semibold")
                tile.props["data-testid"] = f"tile-{label.split()[0].lower()}"


def register(context: ServerContext) -> None:
    signed_in_page(context, "/", _render)


async def _render(context: ServerContext, viewer: Viewer) -> None:
    state = {"query": FleetQuery()}

    async def load() -> tuple[FleetPage, dict[str, Any]]:
        query = state["query"]
        now = utc_now()

        def work(session: Any) -> tuple[FleetPage, dict[str, Any]]:
            page = fleet_page(session, viewer.org_id, query)
            return page, queries.overview(session, viewer.org_id, now - timedelta(hours=24), now)

        return await in_db(context, work)

    with frame(viewer, "Fleet"):
        tiles = ui.element("div")
        with ui.row().classes("items-center gap-3 w-full"):
            search = (
                ui.input("Search name or id").props("outlined dense clearable debounce=300").classes("w-64")
            )
            search.props('data-testid="fleet-search"')
            kind = ui.select({"all": "all kinds", "vibration": "vibration", "camera": "camera"}, value="all")
            kind.props("outlined dense").classes("w-40")
            status = (
                ui.select(
                    {
                        "all": "any state",
                        "online": "online",
                        "offline": "offline",
                        "alarm": "with open alarm",
                    },
                    value="all",
                )
                .props("outlined dense")
                .classes("w-48")
            )
            summary = ui.label().classes("text-sm ef-muted").props('data-testid="fleet-summary"')
        grid = ui.row().classes("gap-3 w-full")
        pager = ui.pagination(1, 1, direction_links=True).props("max-pages=9 boundary-numbers")

        async def refresh() -> None:
            page, overview = await load()
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
