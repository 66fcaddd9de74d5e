"""Statistics: events per hour/day by kind, person detections, anomaly rate per device, alarms."""

from typing import Any, Literal

from nicegui import ui
from sqlalchemy.orm import Session

from edgefleet.contracts import utc_now
from edgefleet.dashboard import charts
from edgefleet.dashboard.guard import signed_in_page
from edgefleet.dashboard.layout import frame
from edgefleet.dashboard.queries import alarm_stats, anomaly_rate_per_device, since
from edgefleet.dashboard.session import Viewer, in_db
from edgefleet.server.context import ServerContext
from edgefleet.server.services import queries

RANGES = {24: "last 24 h", 168: "last 7 days", 720: "last 30 days"}


def _figures(session: Session, org_id: int, hours: int) -> dict[str, Any]:
    start, now = since(hours), utc_now()
    bucket: Literal["hour", "day"] = "hour" if hours <= 48 else "day"
    by_kind = queries.event_counts(session, org_id, bucket=bucket, group_by="kind", since=start, until=now)
    persons = queries.event_counts(
        session, org_id, bucket="hour", group_by="device", since=start, until=now, kind="person"
    )
    totals: dict[Any, int] = {}
    for row in persons:
        totals[row["bucket"]] = totals.get(row["bucket"], 0) + row["count"]
    persons_total = [{"bucket": b, "key": "all cameras", "count": n} for b, n in sorted(totals.items())]
    return {
        "span": (start, now),
        "bucket": bucket,
        "by_kind": by_kind,
        "persons": persons + persons_total,
        "anomaly": anomaly_rate_per_device(session, org_id, start),
        "alarms": alarm_stats(session, org_id, start, now),
        "overview": queries.overview(session, org_id, start, now),
    }


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def register(context: ServerContext) -> None:
    signed_in_page(context, "/stats", _render)


async def _render(context: ServerContext, viewer: Viewer) -> None:
    with frame(viewer, "Statistics"):
        span = ui.select(RANGES, value=24, label="Time range").props("outlined dense").classes("w-48")
        body = ui.column().classes("w-full gap-4")

    async def refresh(hours: int) -> None:
        data = await in_db(context, lambda s: _figures(s, viewer.org_id, hours))
        alarms = data["alarms"]
        body.clear()
        with body:
            with ui.element("div").classes("grid grid-cols-2 sm:grid-cols-3 xl:grid-cols-6 gap-2 w-full"):
                for label, value in (
                    ("Events", str(data["overview"]["events"])),
                    ("Alarms opened", str(alarms.opened)),
                    ("Acknowledged", str(alarms.acknowledged)),
                    ("Median time to acknowledge", _duration(alarms.ack_seconds_median)),
                    ("Mean time to acknowledge", _duration(alarms.ack_seconds_mean)),
                    ("Person detections / h", f"{data['overview']['detections_per_hour'] or 0:.1f}"),
                ):
                    with ui.card().classes("ef-tile p-2 sm:p-3 gap-0"):
                        ui.label(label).classes("text-xs ef-muted")
                        ui.label(value).classes("text-xl font-semibold")
            per = "hour" if data["bucket"] == "hour" else "day"
            with ui.element("div").classes("grid grid-cols-1 lg:grid-cols-2 gap-4 w-full"):
                ui.echart(
                    charts.stacked_bars(
                        f"Events per {per} by kind",
                        f"events / {per}",
                        data["by_kind"],
                        "key",
                        span=data["span"],
                    )
                ).classes("w-full h-72").props('data-testid="chart-events"')
                ui.echart(
                    charts.stacked_bars(
                        "Person detections per hour",
                        "person events / h",
                        data["persons"],
                        "key",
                        span=data["span"],
                        total="all cameras",
                    )
                ).classes("w-full h-72").props('data-testid="chart-persons"')
                ui.echart(
                    charts.category_bars(
                        "Anomaly rate per device", "anomalous windows / windows", data["anomaly"]
                    )
                ).classes("w-full h-72").props('data-testid="chart-anomaly"')
                ui.echart(
                    charts.stacked_bars(
                        "Alarms opened per day",
                        "alarms / day",
                        alarms.per_day,
                        "kind",
                        "day",
                        span=data["span"],
                    )
                ).classes("w-full h-72").props('data-testid="chart-alarms"')

    span.on_value_change(lambda e: refresh(int(e.value)))
    await refresh(24)
