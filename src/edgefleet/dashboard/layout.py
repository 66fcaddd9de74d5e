"""The frame every signed-in page shares: header with navigation, the user, and sign-out."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from nicegui import ui

from edgefleet.contracts import utc_now
from edgefleet.dashboard.session import Viewer

NAV = (
    ("Fleet", "/", "sensors"),
    ("Live log", "/live", "bolt"),
    ("Statistics", "/stats", "bar_chart"),
    ("Alarms", "/alarms", "notifications_active"),
    ("Models", "/models", "model_training"),
    ("Rollouts", "/rollouts", "system_update_alt"),
    ("Add device", "/devices/new", "add_circle"),
    ("Account", "/account", "person"),
)
_STYLE = """
<style>
  body { background: #f8fafc; }
  .ef-card { transition: box-shadow .15s; }
  .ef-card:hover { box-shadow: 0 4px 14px rgba(15,23,42,.12); }
  .ef-muted { color: #64748b; }
  .ef-mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
</style>
"""


def _theme() -> None:
    ui.colors(primary="#1e40af", secondary="#0f766e", accent="#7c3aed", negative="#dc2626")
    ui.add_head_html(_STYLE)


@contextmanager
def frame(viewer: Viewer, title: str) -> Iterator[None]:
    """Header and a centred content column; use as `with frame(viewer, "Fleet"): ...`."""
    _theme()
    ui.page_title(f"{title} · edgefleet")
    with ui.header().classes("items-center bg-white text-slate-800 shadow-sm px-4 py-2 gap-2"):
        ui.link("edgefleet", "/").classes("text-lg font-bold text-blue-900 no-underline mr-4")
        for label, href, icon in NAV:
            if href == "/devices/new" and not viewer.can("admin"):
                continue
            link = ui.link(target=href).classes("no-underline text-slate-700 hover:text-blue-800")
            with link, ui.row().classes("items-center gap-1 px-2"):
                ui.icon(icon, size="xs")
                ui.label(label).classes("text-sm")
        ui.space()
        ui.label(f"{viewer.email} · {viewer.role} · {viewer.org_name}").classes("text-xs ef-muted")
        with ui.element("form").props('method="post" action="/ui/logout"'):
            ui.button("Log out", icon="logout").props("type=submit flat dense no-caps").props(
                'data-testid="logout"'
            )
    with ui.column().classes("w-full max-w-7xl mx-auto p-4 gap-4"):
        ui.label(title).classes("text-2xl font-semibold text-slate-800")
        yield


@contextmanager
def bare(title: str) -> Iterator[None]:
    """The frame of the signed-out pages (login, sign-up)."""
    _theme()
    ui.page_title(f"{title} · edgefleet")
    with ui.column().classes("w-full items-center pt-16"):
        ui.label("edgefleet").classes("text-3xl font-bold text-blue-900")
        ui.label("Edge AI for industrial IoT").classes("ef-muted mb-6")
        yield


def ago(ts: datetime | None, now: datetime | None = None) -> str:
    """'12 s ago', '5 min ago', '3 h ago', '2 d ago', or 'never'."""
    if ts is None:
        return "never"
    seconds = max(0.0, ((now or utc_now()) - ts).total_seconds())
    for limit, unit, size in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
        if seconds < limit:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds / 86400:.0f} d ago"


def stamp(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def severity_color(severity: str) -> str:
    return {"critical": "negative", "warning": "warning", "info": "info"}.get(severity, "grey")
