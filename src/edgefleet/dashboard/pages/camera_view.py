"""A camera's own view on its device page: the latest thumbnail and who is there now, detections per
hour (the camera's telemetry), and a presence timeline (its person events: a raised event holds its
person count until the cleared one)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nicegui import ui
from sqlalchemy import select
from sqlalchemy.orm import Session

from edgefleet.contracts import utc_now
from edgefleet.dashboard import charts
from edgefleet.dashboard.layout import ago
from edgefleet.dashboard.queries import latest_thumbnail
from edgefleet.dashboard.theme import state_chip
from edgefleet.server.db.models import EventRow

MAX_CHANGES = 5_000


@dataclass(frozen=True)
class Presence:
    changes: list[tuple[datetime, int]]
    """(device time, persons present from then on), oldest first."""
    before: int
    """Persons present when the range starts (from the last event before it)."""
    span: tuple[datetime, datetime]
    thumbnail: str | None
    """The newest person event's JPEG, base64."""
    last_seen: datetime | None
    """When the camera last raised a person event."""

    @property
    def now(self) -> int:
        return self.changes[-1][1] if self.changes else self.before


def _count(active: bool, persons: int | None) -> int:
    return (persons or 1) if active else 0


def presence(session: Session, org_id: int, device_id: str, since: datetime) -> Presence:
    person = (EventRow.org_id == org_id, EventRow.device_id == device_id, EventRow.kind == "person")
    rows = session.execute(
        select(EventRow.ts, EventRow.active, EventRow.person_count)
        .where(*person, EventRow.ts >= since)
        .order_by(EventRow.ts, EventRow.id)
        .limit(MAX_CHANGES)
    ).all()
    previous = session.execute(
        select(EventRow.active, EventRow.person_count)
        .where(*person, EventRow.ts < since)
        .order_by(EventRow.ts.desc(), EventRow.id.desc())
        .limit(1)
    ).first()
    last_raised = session.scalar(
        select(EventRow.ts).where(*person, EventRow.active.is_(True)).order_by(EventRow.ts.desc()).limit(1)
    )
    return Presence(
        changes=[(ts, _count(active, n)) for ts, active, n in rows],
        before=_count(*previous) if previous else 0,
        span=(since, utc_now()),
        thumbnail=latest_thumbnail(session, org_id, device_id),
        last_seen=last_raised,
    )


def camera_view(view: Presence, telemetry: list[dict[str, Any]]) -> None:
    """Thumbnail and 'now' first (a phone shows them on its first screen), then the two charts."""
    with ui.element("div").classes("grid grid-cols-1 sm:grid-cols-2 lg:grid-cols-3 gap-3 w-full"):
        with ui.card().classes("items-center gap-2 p-3").props('data-testid="camera-now"'):
            ui.label("Latest thumbnail").classes("font-semibold self-start")
            if view.thumbnail:
                ui.image(f"data:image/jpeg;base64,{view.thumbnail}").classes("w-full max-w-xs rounded").props(
                    'data-testid="thumbnail" alt="latest person detection from this camera"'
                )
            else:
                ui.label("none sent yet (thumbnails are optional)").classes("ef-muted text-sm")
            with ui.row().classes("items-center gap-2 self-start"):
                if view.now:
                    state_chip("warning", f"{view.now} person{'s' if view.now != 1 else ''} present")
                else:
                    state_chip("normal", "nobody present")
                ui.label(f"last detection {ago(view.last_seen)}").classes("text-xs ef-muted")
        rates = [(t["ts"], float(t["detections"])) for t in telemetry if t["detections"] is not None]
        series = {"detections per hour": rates}
        detections = ui.echart(charts.series_chart("Detections per hour", "persons / h", series))
        detections.classes("w-full h-64 lg:col-span-2").props('data-testid="detections-chart"')
    presence_chart = ui.echart(charts.presence_chart(view.changes, view.span, view.before))
    presence_chart.classes("w-full h-48 sm:h-56").props('data-testid="presence-chart"')
