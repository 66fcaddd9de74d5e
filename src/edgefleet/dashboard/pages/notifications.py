"""Notifications: channels (with their last success and last error), test-send, rules, and the
delivery log. Admins add and remove; everyone sees what is configured (never its secrets)."""

from typing import Any

from nicegui import ui
from pydantic import ValidationError
from sqlalchemy.orm import Session

from edgefleet.dashboard import bell
from edgefleet.dashboard.guard import signed_in_page
from edgefleet.dashboard.layout import ago, frame, stamp
from edgefleet.dashboard.pages.notification_forms import KINDS, channel_form, rule_form
from edgefleet.dashboard.session import Viewer, in_db, principal_of
from edgefleet.server.context import ServerContext
from edgefleet.server.errors import ServerError
from edgefleet.server.notify import service
from edgefleet.server.notify.schemas import (
    ChannelCreate,
    ChannelPublic,
    DeliveryPublic,
    RuleCreate,
    RulePublic,
)

REFRESH_S = 3.0
_STATUS_COLORS = {"sent": "positive", "failed": "negative", "pending": "warning", "held": "info"}


def register(context: ServerContext) -> None:
    bell.bind(context)
    signed_in_page(context, "/notifications", _render)


def _load(
    session: Session, viewer: Viewer
) -> tuple[list[ChannelPublic], list[RulePublic], list[DeliveryPublic]]:
    principal = principal_of(session, viewer)
    channels = service.list_channels(session, principal)
    rules = [RulePublic.model_validate(r) for r in service.list_rules(session, principal)]
    return channels, rules, service.list_deliveries(session, principal, None, None, 50)


def _problem(err: Exception) -> str:
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc']) or 'form'}: {first['msg']}"
    return str(err)


async def _render(context: ServerContext, viewer: Viewer) -> None:
    admin = viewer.can("admin")
    key = context.settings.secret_key
    with frame(viewer, "Notifications"):
        ui.label("Where alarms go: channels, the rules that pick them, and every delivery.").classes(
            "ef-muted"
        )
        channels_box = ui.column().classes("w-full gap-2")
        rules_box = ui.column().classes("w-full gap-2")
        forms = ui.column().classes("w-full gap-2")
        ui.label("Deliveries").classes("text-lg font-semibold")
        deliveries_box = ui.column().classes("w-full gap-1")

    async def act(work: Any, done: str) -> bool:
        try:
            await in_db(context, work)
        except (ServerError, ValidationError, ValueError) as err:
            ui.notify(_problem(err), type="negative", multi_line=True)
            return False
        ui.notify(done, type="positive")
        await refresh(rebuild_forms=True)
        return True

    async def add_channel(body: dict[str, Any]) -> None:
        try:
            create = ChannelCreate.model_validate(body)
        except ValidationError as err:
            ui.notify(_problem(err), type="negative")
            return
        created: dict[str, Any] = {}

        def work(s: Session) -> None:
            created["channel"] = service.create_channel(s, principal_of(s, viewer), create, key)

        if await act(work, f"channel {create.name} added") and created["channel"].generated_secret:
            with ui.dialog() as dialog, ui.card():
                ui.label("The webhook's signing secret (shown once, copy it now):")
                ui.label(created["channel"].generated_secret).classes("ef-mono break-all")
                ui.button("Done", on_click=dialog.close).props("flat no-caps")
            dialog.open()

    async def add_rule(body: dict[str, Any]) -> None:
        try:
            create = RuleCreate.model_validate(body)
        except (ValidationError, ValueError) as err:
            ui.notify(_problem(err), type="negative", multi_line=True)
            return
        await act(
            lambda s: service.create_rule(s, principal_of(s, viewer), create), f"rule {create.name} added"
        )

    async def test_send(channel: ChannelPublic) -> None:
        await act(
            lambda s: service.test_channel(s, principal_of(s, viewer), channel.id, key),
            f"test notification queued for {channel.name}",
        )

    async def remove_channel(channel: ChannelPublic) -> None:
        await act(lambda s: service.delete_channel(s, principal_of(s, viewer), channel.id), "channel removed")

    async def remove_rule(rule: RulePublic) -> None:
        await act(lambda s: service.delete_rule(s, principal_of(s, viewer), rule.id), "rule removed")

    async def refresh(rebuild_forms: bool = False) -> None:
        channels, rules, deliveries = await in_db(context, lambda s: _load(s, viewer))
        names = {c.id: c.name for c in channels}
        channels_box.clear()
        with channels_box:
            ui.label("Channels").classes("text-lg font-semibold")
            if not channels:
                ui.label("No channels yet.").classes("ef-muted")
            for channel in channels:
                _channel_card(channel, admin, test_send, remove_channel)
        rules_box.clear()
        with rules_box:
            ui.label("Rules").classes("text-lg font-semibold")
            if not rules:
                ui.label("No rules yet: alarms reach no channel.").classes("ef-muted")
            for rule in rules:
                _rule_card(rule, names, admin, remove_rule)
        if rebuild_forms or not forms.default_slot.children:
            forms.clear()
            if admin:
                with forms, ui.row().classes("w-full gap-2 items-start"):
                    with ui.column().classes("grow basis-80"):
                        channel_form(add_channel)
                    with ui.column().classes("grow basis-80"):
                        rule_form(channels, add_rule)
        deliveries_box.clear()
        with deliveries_box:
            if not deliveries:
                ui.label("Nothing sent yet.").classes("ef-muted").props('data-testid="no-deliveries"')
            for delivery in deliveries:
                _delivery_row(delivery)

    await refresh()
    ui.timer(REFRESH_S, refresh, immediate=False)  # channel status and the log (the forms stay)


def _channel_card(channel: ChannelPublic, admin: bool, test_send: Any, remove: Any) -> None:
    card = ui.card().classes("w-full p-3").props('data-testid="channel-card"')
    card.props["data-channel-id"] = str(channel.id)
    with card:
        with ui.row().classes("w-full items-center gap-2"):
            ui.label(channel.name).classes("font-semibold")
            ui.badge(KINDS.get(channel.kind, channel.kind).split(" (")[0], color="primary")
            if not channel.enabled:
                ui.badge("disabled", color="grey")
            ui.space()
            if admin:
                ui.button("Send test", on_click=lambda c=channel: test_send(c)).props(
                    'outline dense no-caps data-testid="test-send"'
                )
                ui.button(icon="delete", on_click=lambda c=channel: remove(c)).props(
                    'flat dense round aria-label="Remove channel"'
                )
        summary = ", ".join(f"{k}: {v}" for k, v in channel.config.items() if v not in (None, "", []))
        ui.label(summary or "no settings").classes("text-sm ef-muted break-all")
        if channel.secrets_set:
            ui.label(f"secrets set: {', '.join(channel.secrets_set)} (never shown)").classes(
                "text-xs ef-muted"
            )
        status = f"last success {ago(channel.last_success_at)}"
        ui.label(status).classes("text-sm")
        if channel.last_error:
            error = f"last error {ago(channel.last_error_at)}: {channel.last_error}"
            ui.label(error).classes("text-sm text-negative break-all").props('data-testid="channel-error"')


def _rule_card(rule: RulePublic, names: dict[int, str], admin: bool, remove: Any) -> None:
    with ui.card().classes("w-full p-3").props('data-testid="rule-card"'):
        with ui.row().classes("w-full items-center gap-2"):
            ui.label(rule.name).classes("font-semibold")
            ui.space()
            if admin:
                ui.button(icon="delete", on_click=lambda r=rule: remove(r)).props(
                    'flat dense round aria-label="Remove rule"'
                )
        matches = [
            f"kinds: {', '.join(rule.kinds) or 'all'}",
            f"severity: {rule.min_severity} and up",
            f"devices: {', '.join(rule.device_ids) or 'all'}",
        ]
        if rule.tags:
            matches.append(f"tags: {', '.join(rule.tags)}")
        ui.label(" · ".join(matches)).classes("text-sm")
        targets = ", ".join(names.get(c, f"#{c}") for c in rule.channel_ids) or "no channel"
        ui.label(f"to {targets}" + ("" if rule.notify_cleared else " (not when cleared)")).classes("text-sm")
        if rule.quiet_start:
            bypass = f"; {rule.quiet_bypass_severity} still sent" if rule.quiet_bypass_severity else ""
            quiet = f"quiet {rule.quiet_start}-{rule.quiet_end} {rule.quiet_timezone}{bypass}"
            ui.label(quiet).classes("text-sm ef-muted")
        if rule.escalate_after_s:
            to = ", ".join(names.get(c, f"#{c}") for c in rule.escalate_channel_ids)
            ui.label(f"not acknowledged after {rule.escalate_after_s // 60} min: {to}").classes(
                "text-sm ef-muted"
            )


def _delivery_row(delivery: DeliveryPublic) -> None:
    row = ui.row().classes("w-full items-center gap-2 text-sm").props('data-testid="delivery"')
    row.props["data-status"] = delivery.status
    with row:
        ui.badge(delivery.status, color=_STATUS_COLORS.get(delivery.status, "grey"))
        ui.label(stamp(delivery.sent_at or delivery.created_at)).classes("ef-mono")
        what = f"{delivery.change} · {delivery.device_id or 'test'} → {delivery.channel_name}"
        ui.label(what + (f" ({delivery.recipient})" if delivery.recipient else ""))
        ui.label(f"attempts {delivery.attempts}").classes("ef-muted")
        if delivery.last_error and delivery.status != "sent":
            ui.label(delivery.last_error).classes("text-negative break-all")
