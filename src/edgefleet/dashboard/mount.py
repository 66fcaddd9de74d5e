"""Mount the dashboard's pages on a server app built by `edgefleet.server.create_app`."""

import logging

from fastapi import FastAPI

from edgefleet.server import ServerSettings, create_app
from edgefleet.server.context import ServerContext

log = logging.getLogger(__name__)


def mount_dashboard(app: FastAPI) -> None:
    """Add the dashboard (login, fleet, device, live log, statistics, alarms, account) to `app`.

    NiceGUI keeps one UI app per process, so mount it on one server app only; the REST API, the
    stream and /metrics keep their paths because they are routed before the UI's catch-all mount."""
    from nicegui import ui

    from edgefleet.dashboard import auth_routes, pages, pwa

    context: ServerContext = app.state.edgefleet
    app.include_router(auth_routes.router)
    app.include_router(pwa.router)  # manifest, icons, offline page, service worker at the root scope
    pages.register(context)
    ui.run_with(
        app,
        title="edgefleet",
        mount_path="/",
        show_welcome_message=False,
        dark=None,  # follow the system's light or dark preference
        language="en-US",  # also the <html lang> screen readers need
        reconnect_timeout=10.0,
        # The UI's own session storage is unused (sign-in is the server's cookie), but NiceGUI wants a key.
        storage_secret=context.settings.secret_key.get_secret_value(),
        # its cookie too is Secure when the session cookie is (finding 7)
        session_middleware_kwargs={"https_only": _https_only(context)},
    )


def _https_only(context: ServerContext) -> bool:
    settings = context.settings
    if settings.cookie_secure is not None:
        return settings.cookie_secure
    return settings.public_url.lower().startswith("https://")


def create_dashboard_app(settings: ServerSettings | None = None) -> FastAPI:
    """The server app with the dashboard mounted: what `edgefleet server` and `edgefleet demo` run."""
    app = create_app(settings)
    mount_dashboard(app)
    return app
