"""The forms of the notifications page: a channel of each kind, and a rule. Each returns the request
body for the server's services (validated there; a refusal is shown as it is)."""

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from edgefleet.server.notify.schemas import ChannelPublic

KINDS = {
    "email": "Email (SMTP)",
    "apprise": "Chat or push service (Apprise URL)",
    "webhook": "Webhook (signed JSON)",
    "webpush": "Browser push",
    "mqtt": "MQTT broker (SCADA, Node-RED, Home Assistant)",
}
ALARM_KINDS = {"anomaly": "anomaly", "rule": "rule", "sensor_fault": "sensor fault", "drift": "drift"}
ALARM_KINDS["commissioning"] = "commissioning"
SEVERITIES = {"info": "info and up", "warning": "warning and up", "critical": "critical only"}


def _field(label: str, testid: str, **props: Any) -> ui.input:
    field = ui.input(label, **props).classes("w-full")
    field.props["data-testid"] = testid
    return field


def _words(text: str) -> list[str]:
    return [w.strip() for w in text.replace("\n", ",").split(",") if w.strip()]


def channel_form(on_submit: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    """Name, kind and the kind's settings; secrets are typed, never shown again."""
    with ui.card().classes("w-full p-3").props('data-testid="channel-form"'):
        ui.label("Add a channel").classes("font-semibold")
        name = _field("Name", "channel-name", value="")
        kind = (
            ui.select(KINDS, value="email", label="Kind")
            .classes("w-full")
            .props('data-testid="channel-kind"')
        )
        fields: dict[str, Any] = {}
        body = ui.column().classes("w-full gap-1")

        def build() -> None:
            body.clear()
            fields.clear()
            with body:
                if kind.value == "email":
                    fields["host"] = _field("SMTP host", "smtp-host")
                    fields["port"] = ui.number("Port", value=587, format="%d").classes("w-full")
                    fields["port"].props('data-testid="smtp-port"')
                    security = {"starttls": "STARTTLS", "tls": "TLS", "none": "none (trusted relay)"}
                    fields["security"] = ui.select(security, value="starttls", label="Security").classes(
                        "w-full"
                    )
                    fields["security"].props('data-testid="smtp-security"')
                    fields["username"] = _field("Username (optional)", "smtp-username")
                    fields["password"] = _field("Password", "smtp-password", password=True)
                    fields["sender"] = _field("From", "smtp-sender")
                    fields["to"] = _field("To (comma-separated)", "smtp-to")
                elif kind.value == "apprise":
                    fields["urls"] = ui.textarea(
                        "Apprise URLs, one per line (ntfy://, slack://, tgram://, ...)"
                    )
                    fields["urls"].classes("w-full").props('data-testid="apprise-urls"')
                elif kind.value == "webhook":
                    fields["url"] = _field("URL", "webhook-url")
                    fields["secret"] = _field(
                        "Signing secret (empty: generated, shown once)", "webhook-secret"
                    )
                elif kind.value == "mqtt":
                    fields["url"] = _field("Broker (mqtt:// or mqtts://)", "mqtt-url")
                    fields["username"] = _field("Username (optional)", "mqtt-username")
                    fields["password"] = _field("Password", "mqtt-password", password=True)
                    fields["topic_prefix"] = _field("Topic prefix", "mqtt-prefix", value="edgefleet")
                    fields["ha_discovery"] = ui.checkbox("Home Assistant discovery", value=True)
                else:
                    ui.label("Every browser where a user switched on push (the bell's menu).").classes(
                        "ef-muted"
                    )

        kind.on_value_change(lambda _e: build())
        build()

        async def submit() -> None:
            config: dict[str, Any] = {}
            for key, element in fields.items():
                value = element.value
                if key == "to":
                    value = _words(value or "")
                elif key == "urls":
                    value = [line.strip() for line in (value or "").splitlines() if line.strip()]
                elif key == "port":
                    value = int(value or 0)
                elif isinstance(value, str) and not value.strip():
                    continue
                config[key] = value
            await on_submit({"name": (name.value or "").strip(), "kind": kind.value, "config": config})

        ui.button("Add channel", on_click=submit).props('unelevated no-caps data-testid="add-channel"')


def rule_form(channels: list[ChannelPublic], on_submit: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    """Which alarms (kinds, severity, devices, tags) go to which channels; quiet hours; escalation."""
    options = {c.id: f"{c.name} ({c.kind})" for c in channels}
    with ui.card().classes("w-full p-3").props('data-testid="rule-form"'):
        ui.label("Add a rule").classes("font-semibold")
        name = _field("Name", "rule-name", value="")
        chosen = ui.select(options, multiple=True, label="Send to").classes("w-full")
        chosen.props('use-chips data-testid="rule-channels"')
        kinds = ui.select(ALARM_KINDS, multiple=True, label="Alarm kinds (none: all)").classes("w-full")
        kinds.props("use-chips")
        severity = ui.select(SEVERITIES, value="info", label="Severity").classes("w-full")
        devices = _field("Devices (comma-separated; empty: all)", "rule-devices")
        tags = _field("Device tags (comma-separated; empty: any)", "rule-tags")
        cleared = ui.checkbox("Also when the alarm clears", value=True)
        with ui.row().classes("w-full gap-2 no-wrap"):
            quiet_start = _field("Quiet from (HH:MM)", "quiet-start")
            quiet_end = _field("until (HH:MM)", "quiet-end")
        zone = _field("Time zone", "quiet-zone", value="UTC")
        bypass = ui.select(
            {"critical": "critical alarms", "": "nothing"}, value="critical", label="Sent even when quiet"
        )
        bypass.classes("w-full")
        with ui.row().classes("w-full gap-2 no-wrap"):
            escalate = ui.number("Escalate after (minutes)", format="%d").classes("w-full")
            escalate_to = ui.select(options, multiple=True, label="to").classes("w-full").props("use-chips")

        async def submit() -> None:
            body: dict[str, Any] = {
                "name": (name.value or "").strip(),
                "channel_ids": list(chosen.value or []),
                "kinds": list(kinds.value or []),
                "min_severity": severity.value,
                "device_ids": _words(devices.value or ""),
                "tags": _words(tags.value or ""),
                "notify_cleared": bool(cleared.value),
                "quiet_timezone": (zone.value or "UTC").strip(),
                "quiet_bypass_severity": bypass.value or None,
            }
            if (quiet_start.value or "").strip() or (quiet_end.value or "").strip():
                body |= {"quiet_start": quiet_start.value.strip(), "quiet_end": quiet_end.value.strip()}
            if escalate.value:
                body |= {
                    "escalate_after_s": int(escalate.value) * 60,
                    "escalate_channel_ids": list(escalate_to.value or []),
                }
            await on_submit(body)

        ui.button("Add rule", on_click=submit).props('unelevated no-caps data-testid="add-rule"')
