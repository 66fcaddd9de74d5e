"""Login and sign-up pages: plain HTML forms posted to /ui/login and /ui/signup."""

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from edgefleet.dashboard.auth_routes import safe_next
from edgefleet.dashboard.layout import bare, text
from edgefleet.dashboard.session import viewer_of
from edgefleet.server.context import ServerContext


def _field(label: str, name: str, kind: str = "text", value: str = "", autocomplete: str = "") -> None:
    # `value` comes from the URL: a text value, never part of a props string (which NiceGUI parses)
    field = ui.input(label, value=value).props("outlined dense").classes("w-full")
    field.props.update(
        {"name": name, "type": kind, "autocomplete": autocomplete or name, "data-testid": name}
    )


def _error(request: Request) -> None:
    message = request.query_params.get("error")
    if message:
        ui.label(message).classes("ef-alarm-text text-sm").props('data-testid="form-error" role="alert"')
    notice = request.query_params.get("notice")
    if notice:
        ui.label(notice).classes("ef-ok-text text-sm").props('data-testid="form-notice" role="status"')


def register(context: ServerContext) -> None:
    @ui.page("/login")
    async def login_page(request: Request) -> RedirectResponse | None:
        if await viewer_of(context, request) is not None:
            return RedirectResponse("/", status_code=303)
        with bare("Log in"), ui.card().classes("w-full max-w-sm p-4 sm:p-6"):
            text("h2", "Log in").classes("text-xl font-semibold m-0")
            _error(request)
            with (
                ui.element("form")
                .props('method="post" action="/ui/login"')
                .classes("w-full flex flex-col gap-3")
            ):
                _field("Email", "email", "email", request.query_params.get("email", ""))
                _field("Password", "password", "password", autocomplete="current-password")
                hidden = ui.element("input")
                hidden.props.update({"type": "hidden", "name": "next", "value": _safe_next(request)})
                ui.button("Log in").props("type=submit unelevated no-caps").classes("w-full").props(
                    'data-testid="submit"'
                )
            with ui.row().classes("text-sm gap-1"):
                ui.label("No account yet?")
                ui.link("Create an organization", "/signup")
        return None

    @ui.page("/signup")
    async def signup_page(request: Request) -> None:
        with bare("Sign up"), ui.card().classes("w-full max-w-sm p-4 sm:p-6"):
            text("h2", "Create an organization").classes("text-xl font-semibold m-0")
            ui.label("You become its owner and can invite your team.").classes("text-sm ef-muted")
            _error(request)
            with (
                ui.element("form")
                .props('method="post" action="/ui/signup"')
                .classes("w-full flex flex-col gap-3")
            ):
                _field("Organization", "organization")
                _field("Email", "email", "email", request.query_params.get("email", ""))
                _field(
                    "Password (at least 10 characters)", "password", "password", autocomplete="new-password"
                )
                ui.button("Sign up").props("type=submit unelevated no-caps").classes("w-full").props(
                    'data-testid="submit"'
                )
            with ui.row().classes("text-sm gap-1"):
                ui.label("Have an account?")
                ui.link("Log in", "/login")

    @ui.page("/invite")
    async def invite_page(request: Request) -> None:
        with bare("Join"), ui.card().classes("w-full max-w-sm p-4 sm:p-6"):
            text("h2", "Join your team").classes("text-xl font-semibold m-0")
            ui.label("Paste the invite token an owner gave you and choose a password.").classes(
                "text-sm ef-muted"
            )
            _error(request)
            with (
                ui.element("form")
                .props('method="post" action="/ui/invite"')
                .classes("w-full flex flex-col gap-3")
            ):
                _field(
                    "Invite token", "token", value=request.query_params.get("token", ""), autocomplete="off"
                )
                _field(
                    "Password (at least 10 characters)", "password", "password", autocomplete="new-password"
                )
                ui.button("Join").props("type=submit unelevated no-caps").classes("w-full").props(
                    'data-testid="submit"'
                )


def _safe_next(request: Request) -> str:
    return safe_next(request.query_params.get("next", "/"))
