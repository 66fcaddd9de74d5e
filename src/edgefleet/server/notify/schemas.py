"""API schemas of notifications: separate Create / Update / Public models. Channel secrets are
write-only: a Public model lists which are set (`secrets_set`), never their values."""

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from edgefleet.server.notify.config import ChannelKind
from edgefleet.server.notify.rules import zone
from edgefleet.server.schemas import DeviceIdStr, Input, Public, Tag, Text128

Severity = Literal["info", "warning", "critical"]
AlarmKind = Literal["anomaly", "rule", "sensor_fault", "drift", "commissioning"]
HhMm = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
ModelId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ChannelId = Annotated[int, Field(ge=1, le=2**63 - 1)]
DeliveryStatus = Literal["pending", "held", "sending", "sent", "failed", "skipped"]


# --- channels ------------------------------------------------------------------------------------
class ChannelCreate(Input):
    name: Text128
    kind: ChannelKind
    config: dict[str, Any] = Field(default_factory=dict)
    """The kind's settings (docs/notifications.md); secrets included here are stored sealed."""
    enabled: bool = True


class ChannelUpdate(Input):
    name: Text128 | None = None
    config: dict[str, Any] | None = None
    """Settings to change; a secret left out keeps its stored value."""
    enabled: bool | None = None


class ChannelPublic(Public):
    id: int
    name: str
    kind: str
    enabled: bool
    config: dict[str, Any]
    """The settings without secrets."""
    secrets_set: list[str] = Field(default_factory=list)
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    created_at: datetime


class ChannelCreated(ChannelPublic):
    generated_secret: str | None = None
    """A webhook's signing secret when the server generated it: shown once, now."""


class TestSent(BaseModel):
    notification_id: str
    delivery_ids: list[int]


# --- rules ---------------------------------------------------------------------------------------
class _RuleFields(Input):
    name: Text128 | None = None
    enabled: bool | None = None
    kinds: list[AlarmKind] | None = Field(default=None, max_length=8)
    min_severity: Severity | None = None
    device_ids: list[DeviceIdStr] | None = Field(default=None, max_length=1000)
    tags: list[Tag] | None = Field(default=None, max_length=50)
    model_ids: list[ModelId] | None = Field(default=None, max_length=50)
    channel_ids: list[ChannelId] | None = Field(default=None, max_length=20)
    notify_cleared: bool | None = None
    quiet_start: HhMm | None = None
    quiet_end: HhMm | None = None
    quiet_timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    quiet_bypass_severity: Severity | None = None
    escalate_after_s: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    escalate_channel_ids: list[ChannelId] | None = Field(default=None, max_length=20)

    @model_validator(mode="after")
    def _timezone(self) -> Self:
        if self.quiet_timezone is not None:
            zone(self.quiet_timezone)
        return self


class RuleCreate(_RuleFields):
    name: Text128
    channel_ids: list[ChannelId] = Field(min_length=1, max_length=20)
    quiet_bypass_severity: Severity | None = "critical"

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.quiet_start is None) != (self.quiet_end is None):
            raise ValueError("quiet hours need both quiet_start and quiet_end")
        if self.escalate_after_s is not None and not self.escalate_channel_ids:
            raise ValueError("an escalation needs escalate_channel_ids")
        return self


class RuleUpdate(_RuleFields):
    model_config = ConfigDict(extra="forbid")


class RulePublic(Public):
    id: int
    name: str
    enabled: bool
    kinds: list[str]
    min_severity: str
    device_ids: list[str]
    tags: list[str]
    model_ids: list[str]
    channel_ids: list[int]
    notify_cleared: bool
    quiet_start: str | None
    quiet_end: str | None
    quiet_timezone: str
    quiet_bypass_severity: str | None
    escalate_after_s: int | None
    escalate_channel_ids: list[int]
    created_at: datetime


# --- deliveries, the bell, Web Push ------------------------------------------------------------
class DeliveryPublic(BaseModel):
    id: int
    channel_id: int
    channel_name: str
    rule_id: int | None
    recipient: str
    status: str
    attempts: int
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None
    created_at: datetime
    notification_id: str
    change: str
    alarm_id: int | None
    device_id: str | None


class FeedItem(BaseModel):
    id: int
    notification_id: str
    change: str
    severity: str
    alarm_id: int | None
    device_id: str | None
    kind: str | None
    created_at: datetime


class Feed(BaseModel):
    items: list[FeedItem]
    unseen: int
    """Notifications newer than the newest this user marked seen."""


class FeedSeen(Input):
    last_id: int = Field(ge=0, le=2**63 - 1)


class PushKeys(Input):
    p256dh: Annotated[str, StringConstraints(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_=-]+$")]
    auth: Annotated[str, StringConstraints(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_=-]+$")]


class PushSubscriptionCreate(Input):
    """What the browser's `PushSubscription.toJSON()` gives (`expirationTime` is ignored)."""

    endpoint: Annotated[str, StringConstraints(max_length=1024, pattern=r"^https://[^\s]+$")]
    keys: PushKeys
    expirationTime: float | None = None  # noqa: N815 - the browser's name


class PushSubscriptionPublic(Public):
    id: int
    endpoint: str
    created_at: datetime


class PushKey(BaseModel):
    public_key: str
    """The VAPID applicationServerKey (base64url)."""
