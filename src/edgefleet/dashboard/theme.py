"""Colours and base styles of every page: light and dark (following the system), AA contrast, a focus
ring that is always visible, and state colours that travel with an icon and a word.

Colours are CSS variables switched by Quasar's `body--dark` class (dark mode "auto" follows
`prefers-color-scheme`); pages use the `ef-*` classes below instead of fixed Tailwind colours, so
both themes keep their contrast. Quasar's brand colours are darker than its defaults: white text on
them reaches 4.5:1."""

from importlib.resources import files

from nicegui import app, ui

from edgefleet.dashboard.pwa import HEAD_HTML

BRAND = {
    "primary": "#1e40af",
    "secondary": "#0f766e",
    "accent": "#6d28d9",
    "positive": "#15803d",
    "negative": "#b91c1c",
    "warning": "#b45309",
    "info": "#0369a1",
    "dark": "#111827",
    "dark_page": "#0b1220",
}

STYLE = (
    "<style>\n"
    + (files("edgefleet.dashboard") / "static" / "theme.css").read_text(encoding="utf-8")
    + "</style>"
)


def configure_app() -> None:
    """Once, before the UI runs: Quasar's loading bar (shown while NiceGUI's socket falls back to
    XHR polling) is a progressbar, and every progressbar needs a name."""
    app.config.quasar_config.setdefault("loadingBar", {})["aria-label"] = "Loading"


def apply() -> None:
    """Colours, styles and the app's head (manifest, icons, service worker) for the page being built."""
    ui.colors(**BRAND)
    ui.add_head_html(HEAD_HTML + STYLE)


STATES = {
    "alarm": ("error", "ef-state--alarm"),
    "online": ("check_circle", "ef-state--ok"),
    "normal": ("check_circle", "ef-state--ok"),
    "acknowledged": ("task_alt", "ef-state--warn"),
    "warning": ("warning", "ef-state--warn"),
    "offline": ("cloud_off", "ef-state--off"),
    "revoked": ("block", "ef-state--off"),
    "cleared": ("done_all", "ef-state--off"),
}


def state_chip(state: str, text: str | None = None) -> ui.element:
    """A state in an icon, a word and a colour (never the colour alone): alarm, online, offline, ..."""
    icon, css = STATES.get(state, ("help", "ef-state--off"))
    chip = ui.element("span").classes(f"ef-state {css}")
    chip.props.update({"data-state": state, "data-testid": "state-chip"})
    with chip:
        ui.icon(icon, size="1rem").props('aria-hidden="true"')
        ui.label(text or state).classes("inline")
    return chip
