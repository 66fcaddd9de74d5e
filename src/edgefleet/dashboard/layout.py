"""The frame every signed-in page shares, from a 360 px phone to a desktop.

- desktop (>= 1024 px): the navigation is a side drawer that stays open; the header has the user
  and sign-out;
- tablet and phone: the drawer closes into a menu button; on a phone (< 600 px) a bottom bar keeps
  Alarms, Fleet and the live log one tap away, within reach of a thumb.

Landmarks (header, nav, main), a skip link, an `h1` per page and `aria-current` on the link to the
page being shown make it usable with a keyboard and a screen reader."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from nicegui import ui
from nicegui.elements.mixins.text_element import TextElement

from edgefleet.contracts import utc_now
from edgefleet.dashboard import bell, theme
from edgefleet.dashboard.session import Viewer

NAV: list[tuple[str, str, str]] = [
    ("Fleet", "/", "sensors"),
    ("Alarms", "/alarms", "notifications_active"),
    ("Notifications", "/notifications", "campaign"),
    ("Live log", "/live", "bolt"),
    ("Statistics", "/stats", "bar_chart"),
    ("Models", "/models", "model_training"),
    ("Rollouts", "/rollouts", "system_update_alt"),
    ("Add device", "/devices/new", "add_circle"),
    ("Account", "/account", "person"),
]
"""(label, path, icon): the side navigation, in this order. Add an entry to add a page to it."""
ADMIN_ONLY = {"/devices/new"}
TAB_BAR = ("/alarms", "/", "/live")
"""The phone's bottom bar: what a technician needs at hand, plus the menu."""

_OPEN_MENU_JS = """() => {
  getElement(%d).toggle();
  setTimeout(() => {
    const link = document.querySelector('#ef-nav a');
    if (link && !link.closest('.q-layout--prevent-focus')) link.focus();
  }, 300);
}"""


def text(tag: str, content: str) -> TextElement:
    """An element with a tag of our choice (h1, h2, p, ...) holding `content` as text, never HTML."""
    return TextElement(tag=tag, text=content)


def current(path: str, href: str) -> bool:
    """Whether the navigation link `href` is the section of `path` (a device page is in Fleet)."""
    if href == "/":
        return path == "/" or (path.startswith("/devices/") and path != "/devices/new")
    return path == href or path.startswith(href + "/")


def _page_path() -> str:
    try:
        return ui.context.client.request.url.path
    except RuntimeError:  # no request (a page built outside one): nothing is marked current
        return ""


def _nav_link(label: str, href: str, icon: str, here: bool) -> None:
    link = ui.link(target=href)
    if here:
        link.props('aria-current="page"')
    with link:
        ui.icon(icon, size="sm").props('aria-hidden="true"')
        ui.label(label)


def _drawer(viewer: Viewer, path: str) -> ui.left_drawer:
    drawer = (
        ui.left_drawer(value=None, bordered=True).classes("ef-drawer p-0").props("width=232 breakpoint=1023")
    )
    with drawer:
        with ui.row().classes("lt-md w-full items-center justify-between px-4 py-2"):
            ui.label(viewer.org_name).classes("text-sm ef-muted truncate")
            ui.button(icon="close", on_click=drawer.hide).props(
                'flat round dense aria-label="Close navigation"'
            )
        with ui.element("nav").classes("ef-nav w-full py-2").props('id="ef-nav" aria-label="Main"'):
            for label, href, icon in NAV:
                if href in ADMIN_ONLY and not viewer.can("admin"):
                    continue
                _nav_link(label, href, icon, current(path, href))
        with ui.column().classes("lt-md w-full px-4 py-3 gap-0"):
            ui.label(viewer.email).classes("text-sm break-all")
            ui.label(f"{viewer.role} · {viewer.org_name}").classes("text-xs ef-muted")
    return drawer


def _tab_bar(path: str, drawer: ui.left_drawer) -> None:
    labels = {href: (label, icon) for label, href, icon in NAV}
    with ui.footer().classes("ef-tabbar xs p-0"), ui.element("nav").classes("w-full flex"):
        for href in TAB_BAR:
            label, icon = labels[href]
            link = ui.link(target=href)
            link.props["data-testid"] = f"tab-{label.split()[0].lower()}"
            if current(path, href):
                link.props('aria-current="page"')
            with link:
                ui.icon(icon, size="sm").props('aria-hidden="true"')
                ui.label(label)
        more = ui.element("button").props('type="button" data-testid="tab-menu"')
        more.on("click", js_handler=_OPEN_MENU_JS % drawer.id)
        with more:
            ui.icon("menu", size="sm").props('aria-hidden="true"')
            ui.label("More")


@contextmanager
def frame(viewer: Viewer, title: str) -> Iterator[None]:
    """Header, navigation and the page's main column; use as `with frame(viewer, "Fleet"): ...`."""
    theme.apply()
    ui.page_title(f"{title} · edgefleet")
    path = _page_path()
    with ui.header().classes("ef-header items-center px-2 sm:px-4 py-1 gap-1 sm:gap-2 no-wrap"):
        ui.link("Skip to content", "#main").classes("ef-skip")
        menu = ui.button(icon="menu").props('flat round aria-label="Open navigation" data-testid="menu"')
        menu.classes("lt-md")
        ui.link("edgefleet", "/").classes("ef-brand text-lg mr-2")
        ui.space()
        bell.render(viewer)  # alarm notifications of the signed-in user (dashboard/bell.py)
        ui.label(f"{viewer.email} · {viewer.role} · {viewer.org_name}").classes("gt-sm text-xs ef-muted")
        with ui.element("form").props('method="post" action="/ui/logout"'):
            logout = ui.button(icon="logout").props('type=submit flat dense no-caps data-testid="logout"')
            with logout:  # the words stay the button's name on a phone, where only the icon shows
                ui.label("Log out").classes("sr-only sm:not-sr-only sm:ml-1")
    drawer = _drawer(viewer, path)
    menu.on("click", js_handler=_OPEN_MENU_JS % drawer.id)
    _tab_bar(path, drawer)
    main = ui.element("main").classes("w-full max-w-7xl mx-auto flex flex-col p-1 sm:p-2 gap-3 sm:gap-4")
    with main.props('id="main" tabindex="-1"'):
        text("h1", title).classes("ef-title")
        yield


@contextmanager
def bare(title: str) -> Iterator[None]:
    """The frame of the signed-out pages (login, sign-up)."""
    theme.apply()
    ui.page_title(f"{title} · edgefleet")
    with (
        ui.element("main").classes("w-full flex flex-col items-center pt-8 sm:pt-16 px-2").props('id="main"')
    ):
        text("h1", "edgefleet").classes("text-3xl font-bold ef-brand")
        ui.label("Edge AI for industrial IoT").classes("ef-muted mb-6")
        yield


def cards_when_narrow(table: ui.table) -> ui.table:
    """Below 1024 px each row of `table` reads as a card of 'label value' lines (theme.css), so a
    phone never scrolls sideways through a table. Cells with a slot of their own set `data-label`."""
    table.classes("ef-stack")
    table.add_slot("body-cell", '<q-td :props="props" :data-label="props.col.label">{{ props.value }}</q-td>')
    return table


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
    return {"critical": "negative", "warning": "warning", "info": "info"}.get(severity, "blue-grey-8")
