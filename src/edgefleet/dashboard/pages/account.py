"""Account: profile, password change, API keys, organization members, roles and invites."""

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from nicegui import ui
from pydantic import ValidationError
from sqlalchemy.orm import Session

from edgefleet.dashboard.guard import signed_in_page
from edgefleet.dashboard.layout import frame, stamp
from edgefleet.dashboard.session import Viewer, in_db, principal_of
from edgefleet.server.context import ServerContext
from edgefleet.server.errors import ServerError
from edgefleet.server.schemas import (
    ApiKeyPublic,
    InviteCreate,
    PasswordChange,
    UserPublic,
    UserUpdate,
)
from edgefleet.server.services import accounts

ROLES = {"viewer": "viewer", "admin": "admin", "owner": "owner"}


def register(context: ServerContext) -> None:
    signed_in_page(context, "/account", _render)


def _runner(context: ServerContext, viewer: Viewer) -> Callable[[Callable[..., Any], str], Awaitable[Any]]:
    """Run a service call as the viewer; failures become a notification, not an error page."""

    async def run(work: Callable[..., Any], done: str) -> Any:
        def call(session: Session) -> Any:
            return work(session, principal_of(session, viewer))

        try:
            result = await in_db(context, call)
        except (ServerError, ValidationError) as err:
            ui.notify(str(err), type="negative")
            return None
        if done:
            ui.notify(done, type="positive")
        return result if result is not None else True

    return run


async def _render(context: ServerContext, viewer: Viewer) -> None:
    run = _runner(context, viewer)
    with frame(viewer, "Account"):
        with ui.card().classes("w-full p-4 gap-1"):
            ui.label("Profile").classes("font-semibold")
            ui.label(f"{viewer.email}").props('data-testid="profile-email"')
            ui.label(f"{viewer.role} of {viewer.org_name}").classes("ef-muted text-sm")
        _password_card(run, viewer.email)
        keys_box = ui.card().classes("w-full p-4 gap-2")
        members_box = ui.card().classes("w-full p-4 gap-2")

    async def refresh_keys() -> None:
        keys = await run(
            lambda s, p: [ApiKeyPublic.model_validate(k) for k in accounts.list_api_keys(s, p)], ""
        )
        keys_box.clear()
        with keys_box:
            _keys_card(keys or [], run, refresh_keys)

    async def refresh_members() -> None:
        users = await run(lambda s, p: [UserPublic.model_validate(u) for u in accounts.list_users(s, p)], "")
        members_box.clear()
        with members_box:
            _members_card(viewer, users or [], run, refresh_members, context.settings.invite_ttl_s)

    await refresh_keys()
    await refresh_members()


def _password_card(run: Callable[[Callable[..., Any], str], Awaitable[Any]], email: str) -> None:
    with ui.card().classes("w-full p-4 gap-2"):
        ui.label("Change password").classes("font-semibold")
        with ui.row().classes("gap-2 items-center"):
            current = (
                ui.input("Current password", password=True)
                .props("outlined dense")
                .props('data-testid="pw-current"')
            )
            new = (
                ui.input("New password (10+ characters)", password=True)
                .props("outlined dense")
                .props('data-testid="pw-new"')
            )

            async def change() -> None:
                try:
                    body = PasswordChange(current_password=current.value or "", new_password=new.value or "")
                except ValidationError as err:
                    ui.notify(f"{err.errors()[0]['loc'][0]}: {err.errors()[0]['msg']}", type="negative")
                    return
                sessions_ended = await run(
                    lambda s, p: accounts.change_password(s, p, body.current_password, body.new_password),
                    "password changed",
                )
                if sessions_ended:
                    # This browser's session ended with the others: sign in with the new password.
                    notice = quote("Password changed: log in with the new one.")
                    ui.navigate.to(f"/login?email={quote(email)}&notice={notice}")
                elif sessions_ended is not None:  # None: refused, and `run` said why
                    current.value = new.value = ""

            ui.button("Change", on_click=change).props("unelevated no-caps").props('data-testid="pw-change"')


def _keys_card(keys: list[ApiKeyPublic], run: Any, refresh: Callable[[], Awaitable[None]]) -> None:
    ui.label("API keys").classes("font-semibold")
    ui.label("Bearer tokens for scripts, with your role. A key is shown once.").classes("text-sm ef-muted")
    for key in keys:
        with ui.row().classes("items-center gap-3"):
            ui.label(f"{key.name}").classes("font-medium w-40 break-all")
            ui.label(f"{key.prefix}…").classes("ef-mono text-sm")
            ui.label(f"created {stamp(key.created_at)}, last used {stamp(key.last_used_at)}").classes(
                "text-xs"
            )
            if key.revoked_at:
                ui.badge("revoked", color="grey")
            else:

                async def revoke(key_id: int = key.id) -> None:
                    await run(lambda s, p: accounts.revoke_api_key(s, p, key_id), "key revoked")
                    await refresh()

                ui.button("Revoke", on_click=revoke).props("flat dense no-caps color=negative")
    with ui.row().classes("items-center gap-2"):
        name = ui.input("New key name").props("outlined dense").props('data-testid="key-name"')
        shown = ui.label().classes("ef-mono text-sm ef-highlight p-1").props('data-testid="new-key"')
        shown.visible = False

        async def create() -> None:
            created = await run(lambda s, p: accounts.create_api_key(s, p, (name.value or "").strip()), "")
            if created:
                _, secret = created
                ui.notify("key created: copy it now, it is not shown again", type="positive")
                # in the page content, not the card being redrawn, so the refresh cannot delete it
                with ui.context.client.content, ui.dialog() as dialog, ui.card():
                    ui.label("Your new API key (shown once):")
                    ui.label(secret).classes("ef-mono text-sm").props('data-testid="api-key-secret"')
                    ui.button("Done", on_click=dialog.close).props("flat no-caps")
                dialog.open()
                await refresh()  # last: it deletes this handler's own button

        ui.button("Create key", on_click=create).props("unelevated no-caps").props('data-testid="create-key"')


def _members_card(
    viewer: Viewer,
    users: list[UserPublic],
    run: Any,
    refresh: Callable[[], Awaitable[None]],
    invite_ttl_s: int,
) -> None:
    ui.label("Members").classes("font-semibold")
    owner = viewer.can("owner")
    for user in users:
        row = ui.row().classes("items-center gap-3")
        row.props["data-user"] = user.email  # a value, never a props string: emails may hold quotes
        with row:
            ui.label(user.email).classes("w-full sm:w-64 break-all")
            if owner and user.id != viewer.user_id:

                async def set_role(value: Any, user_id: int = user.id) -> None:
                    await run(
                        lambda s, p: accounts.update_user(s, p, user_id, UserUpdate(role=value)),
                        "role changed",
                    )
                    await refresh()

                ui.select(
                    ROLES, value=user.role, label="Role", on_change=lambda e, f=set_role: f(e.value)
                ).props("outlined dense").classes("w-32")

                async def set_active(active: bool, user_id: int = user.id) -> None:
                    await run(
                        lambda s, p: accounts.update_user(s, p, user_id, UserUpdate(is_active=active)),
                        "enabled" if active else "disabled",
                    )
                    await refresh()

                label = "Disable" if user.is_active else "Enable"
                ui.button(label, on_click=lambda a=not user.is_active, f=set_active: f(a)).props(
                    "flat dense no-caps"
                )
            else:
                ui.badge(user.role)
            if not user.is_active:
                ui.badge("disabled", color="grey")
    if owner:
        _invite_row(run, invite_ttl_s)


def _invite_row(run: Any, ttl_s: int) -> None:
    with ui.row().classes("items-center gap-2 pt-2"):
        email = (
            ui.input("Invite by email")
            .props("outlined dense")
            .classes("w-full sm:w-64")
            .props('data-testid="invite-email"')
        )
        role = ui.select(ROLES, value="viewer", label="Role").props("outlined dense").classes("w-32")

        async def send() -> None:
            try:
                create = InviteCreate(email=email.value or "", role=role.value)
            except ValidationError as err:
                ui.notify(f"email: {err.errors()[0]['msg']}", type="negative")
                return
            created = await run(lambda s, p: accounts.create_invite(s, p, create, ttl_s), "")
            if created:
                _, token = created
                # in the page content, not the card being redrawn, so a refresh cannot delete it
                with ui.context.client.content, ui.dialog() as dialog, ui.card():
                    ui.label(f"Send {create.email} this invite token (shown once):")
                    ui.label(token).classes("ef-mono text-sm").props('data-testid="invite-token"')
                    ui.label("They open /invite on this server, paste it and choose a password.").classes(
                        "text-xs ef-muted"
                    )
                    ui.button("Done", on_click=dialog.close).props("flat no-caps")
                dialog.open()

        ui.button("Invite", on_click=send).props("unelevated no-caps").props('data-testid="invite"')
