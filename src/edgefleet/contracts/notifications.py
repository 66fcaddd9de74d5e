"""What the server sends about an alarm to the outside (webhooks, northbound MQTT): `AlarmNotification`.

One notification per alarm transition (`opened`, `escalated`, `cleared`), or a `test` a user asked
for. `id` is stable: a notification sent again (a retry, a worker restarted between sending and
recording it) carries the same `id` and the same body, so a receiver deduplicates on it.
"""

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from edgefleet.contracts.base import DeviceId, UtcDatetime, VersionedMessage, WireModel

NotificationChange = Literal["opened", "escalated", "cleared", "test"]
NOTIFICATION_CHANGES: tuple[str, ...] = ("opened", "escalated", "cleared", "test")
Severity = Literal["info", "warning", "critical"]
NotificationId = Annotated[str, StringConstraints(pattern=r"^efn_[0-9a-f]{32}$")]
_Text = Annotated[str, StringConstraints(max_length=4096)]


class NotificationOrganization(WireModel):
    id: int = Field(ge=1)
    name: Annotated[str, StringConstraints(max_length=128)]


class NotificationAlarm(WireModel):
    id: int = Field(ge=1)
    device_id: DeviceId
    kind: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    severity: Severity
    state: Literal["open", "acknowledged", "cleared"]
    """The alarm's state when the notification was written."""
    opened_at: UtcDatetime
    cleared_at: UtcDatetime | None = None
    clear_reason: Annotated[str, StringConstraints(max_length=32)] | None = None
    event_count: int = Field(ge=0)


class NotificationDevice(WireModel):
    id: DeviceId
    name: Annotated[str, StringConstraints(max_length=128)]
    kind: Annotated[str, StringConstraints(max_length=16)]
    tags: list[Annotated[str, StringConstraints(max_length=64)]] = Field(default_factory=list)
    model_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    model_version: Annotated[str, StringConstraints(max_length=32)] | None = None


class NotificationLinks(WireModel):
    alarm: Annotated[str, StringConstraints(max_length=2048)] | None = None
    """The alarm in the dashboard."""
    acknowledge: Annotated[str, StringConstraints(max_length=2048)] | None = None
    """A signed one-time link that acknowledges the alarm (opening it shows a confirmation page;
    only its button acknowledges). Absent once the alarm is cleared."""


class AlarmNotification(VersionedMessage):
    """The JSON body of a webhook and of the northbound MQTT alarm topic. `ts` is when the transition
    happened (server time), the same on every resend."""

    id: NotificationId
    change: NotificationChange
    organization: NotificationOrganization
    alarm: NotificationAlarm | None = None
    """None only for `test`."""
    device: NotificationDevice | None = None
    """None only for `test`, or when the device was deleted since."""
    escalation: int = Field(default=0, ge=0)
    """0; for `escalated`, the rule whose escalation step fired."""
    title: Annotated[str, StringConstraints(max_length=256)]
    text: _Text
    links: NotificationLinks = Field(default_factory=NotificationLinks)


def notification_schema() -> dict[str, object]:
    """JSON Schema (draft 2020-12) of the webhook body."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **AlarmNotification.model_json_schema(by_alias=True),
    }
