"""The notification bell in the header: how many alarm notifications the signed-in user has not seen,
the latest ones in a menu (opening it marks them seen), and switching on browser push for this device.

`render(viewer)` is called by the layout's header; `bind(context)` (when the pages are registered)
tells it which server to ask, so the layout needs no more than the viewer it already has.
"""

from typing import Any, Literal

from nicegui import app, ui

from edgefleet.dashboard.session import Viewer, in_db, principal_of
from edgefleet.server.context import ServerContext
from edgefleet.server.errors import ServerError
from edgefleet.server.notify import service
from edgefleet.server.notify.schemas import Feed

REFRESH_S = 5.0
_VERBS = {"opened": "opened", "escalated": "escalated (not acknowledged)", "cleared": "cleared"}
Tone = Literal["positive", "negative", "warning"]
_PUSH_RESULTS: dict[str, tuple[str, Tone]] = {
    "subscribed": ("Push notifications are on for this browser.", "positive"),
    "denied": ("The browser's notification permission was refused.", "warning"),
    "unsupported": ("This browser cannot receive push notifications.", "warning"),
    "no-service-worker": ("Push needs the dashboard installed as an app (its service worker).", "warning"),
    "refused": ("The server refused the subscription.", "negative"),
}


def bind(context: ServerContext) -> None:
    """Give the bell its server: NiceGUI serves one UI app per process, mounted on one server app
    (`dashboard/mount.py`), so its state holds that server's context."""
    app.state.edgefleet_bell = context


def _context() -> ServerContext | None:
    context: ServerContext | None = getattr(app.state, "edgefleet_bell", None)
    return context


def render(viewer: Viewer) -> None:
    from edgefleet.dashboard.layout import ago, severity_color  # the layout calls us: import late

    context = _context()
    if context is None:
        return
    ui.add_head_html('<script src="/notify/push-client.js" defer></script>')
    state: dict[str, Any] = {"feed": None}

    async def enable_push() -> None:
        result = await ui.run_javascript(
            "return window.edgefleetPush ? await window.edgefleetPush.enable() : 'unsupported'", timeout=30
        )
        message, tone = _PUSH_RESULTS.get(str(result), (f"push: {result}", "warning"))
        ui.notify(message, type=tone)

    button = ui.button(icon="notifications").props('flat round data-testid="bell"')
    with button:
        ui.label("Notifications").classes("sr-only")  # its name with the count (axe: label in name)
        badge = ui.badge("", color="negative").props("floating rounded").props('data-testid="bell-count"')
        badge.set_visibility(False)
        with ui.menu().classes("w-80 max-w-full") as menu:
            items = ui.column().classes("w-full gap-0 p-1").props('data-testid="bell-items"')
            ui.separator()
            with ui.row().classes("w-full justify-between px-2 py-1"):
                ui.link("All alarms", "/alarms").classes("text-sm")
                ui.button("Push on this device", on_click=enable_push).props(
                    'flat dense no-caps size=sm data-testid="enable-push"'
                )

    def show(feed: Feed) -> None:
        state["feed"] = feed
        badge.set_text(str(feed.unseen) if feed.unseen < 100 else "99+")
        badge.set_visibility(feed.unseen > 0)
        items.clear()
        with items:
            if not feed.items:
                ui.label("No alarm notifications yet.").classes("ef-muted text-sm p-2")
            for item in feed.items[:10]:
                with ui.link(target=f"/alarms?alarm={item.alarm_id}").classes(
                    "w-full no-underline text-inherit"
                ):
                    row = ui.row().classes("w-full items-center gap-2 px-2 py-1 no-wrap")
                    with row.props('data-testid="bell-item"'):
                        ui.badge(item.severity, color=severity_color(item.severity))
                        what = f"{item.kind} on {item.device_id} {_VERBS.get(item.change, item.change)}"
                        ui.label(what).classes("text-sm grow")
                        ui.label(ago(item.created_at)).classes("text-xs ef-muted")

    async def refresh() -> None:
        try:
            feed = await in_db(context, lambda s: service.feed(s, principal_of(s, viewer)))
        except ServerError:  # signed out meanwhile: the page's guard sends the browser to log in
            return
        show(feed)

    async def mark_seen() -> None:
        feed: Feed | None = state["feed"]
        if feed is None or not feed.items or feed.unseen == 0:
            return
        newest = feed.items[0].id
        await in_db(context, lambda s: service.mark_seen(s, principal_of(s, viewer), newest))
        show(feed.model_copy(update={"unseen": 0}))

    menu.on("show", mark_seen)
    ui.timer(0.1, refresh, once=True)
    ui.timer(REFRESH_S, refresh, immediate=False)
