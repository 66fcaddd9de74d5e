"""API schemas: separate Create / Update / Public models per resource."""

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from edgefleet.contracts import DEVICE_KINDS, EVENT_KINDS
from edgefleet.contracts.topics import DEVICE_ID_PATTERN

EmailStr = Annotated[
    str,
    StringConstraints(
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254, strip_whitespace=True, to_lower=True
    ),
]
T = TypeVar("T")
Role = Literal["owner", "admin", "viewer"]
ROLE_RANK: dict[str, int] = {"viewer": 0, "admin": 1, "owner": 2}
Password = Annotated[str, StringConstraints(min_length=10, max_length=256)]
Text64 = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
Text128 = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
DeviceIdStr = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
DeviceKindStr = Literal["vibration", "camera"]
EventKindStr = Literal["anomaly", "person", "rule", "sensor_fault", "drift"]
assert set(DEVICE_KINDS) == {"vibration", "camera"} and set(EVENT_KINDS) == {
    "anomaly",
    "person",
    "rule",
    "sensor_fault",
    "drift",
}


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- auth --------------------------------------------------------------------------------------
class SignUp(Input):
    email: EmailStr
    password: Password
    organization: Text128


class Login(Input):
    email: EmailStr
    password: Annotated[str, StringConstraints(max_length=256)]


class PasswordChange(Input):
    current_password: Annotated[str, StringConstraints(max_length=256)]
    new_password: Password


class TokenPublic(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime


class ApiKeyCreate(Input):
    name: Text64


class ApiKeyPublic(Public):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="shown once; store it now")


# --- organizations and users -------------------------------------------------------------------
class OrganizationPublic(Public):
    id: int
    name: str
    event_retention_days: int
    telemetry_retention_days: int
    created_at: datetime


class OrganizationUpdate(Input):
    name: Text128 | None = None
    event_retention_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    telemetry_retention_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class UserPublic(Public):
    id: int
    org_id: int
    email: str
    role: Role
    is_active: bool
    created_at: datetime


class UserUpdate(Input):
    role: Role | None = None
    is_active: bool | None = None


class InviteCreate(Input):
    email: EmailStr
    role: Role = "viewer"


class InvitePublic(Public):
    id: int
    email: str
    role: Role
    expires_at: datetime
    accepted_at: datetime | None


class InviteCreated(InvitePublic):
    token: str = Field(description="send to the invitee; shown once")


class InviteAccept(Input):
    token: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    password: Password


# --- devices -----------------------------------------------------------------------------------
class DeviceCreate(Input):
    id: DeviceIdStr
    name: Text128 | None = None
    kind: DeviceKindStr = "vibration"


class DevicePublic(Public):
    id: str
    org_id: int
    name: str
    kind: str
    online: bool
    last_seen: datetime | None
    claimed_at: datetime | None
    revoked_at: datetime | None
    mode: str | None
    firmware_version: str | None
    model_id: str | None
    model_version: str | None
    ota_state: str | None
    created_at: datetime


class DeviceCreated(DevicePublic):
    claim_token: str = Field(description="one-time, expiring; the device exchanges it for credentials")
    claim_expires_at: datetime


class DeviceClaim(Input):
    device_id: DeviceIdStr
    claim_token: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class DeviceCredentials(BaseModel):
    device_id: str
    username: str
    password: str = Field(description="shown once; the server keeps only a hash")
    broker_url: str | None


class CommandCreate(Input):
    command: Literal["recommission", "reset_network", "reboot", "publish_status"]
    args: dict[Text64, str | int | float | bool] = Field(default_factory=dict, max_length=16)


class CommandSent(BaseModel):
    command_id: str
    topic: str


# --- events, telemetry, statistics, alarms, audit ----------------------------------------------
class EventPublic(Public):
    id: int
    device_id: str
    seq: int
    ts: datetime
    received_at: datetime
    kind: str
    active: bool
    severity: str
    score: float | None
    threshold: float | None
    model_id: str | None
    model_version: str | None
    reason: str | None
    message: str | None
    person_count: int | None
    data: dict[str, Any]
    alarm_id: int | None


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page")


class TelemetryPublic(Public):
    id: int
    device_id: str
    seq: int
    ts: datetime
    mode: str
    uptime_s: float
    interval_s: float
    windows: int
    anomaly_rate: float | None
    score_p50: float | None
    score_p95: float | None
    score_max: float | None
    inference_us: float | None
    detections_per_hour: float | None
    drift: float | None
    outbox_depth: int
    data: dict[str, Any]


class RollupPublic(BaseModel):
    device_id: str
    hour: datetime
    samples: int
    windows: int
    anomaly_rate: float | None
    score_max: float | None
    inference_us_mean: float | None
    detections_per_hour_max: float | None


class CountBucket(BaseModel):
    bucket: datetime
    key: str
    count: int


class EventStats(BaseModel):
    bucket: Literal["hour", "day"]
    group_by: Literal["device", "kind"]
    counts: list[CountBucket]


class Overview(BaseModel):
    devices: int
    online: int
    open_alarms: int
    events: int
    anomaly_rate: float | None = Field(description="anomalous windows / windows over the period")
    detections_per_hour: float | None


class AlarmPublic(Public):
    id: int
    device_id: str
    kind: str
    severity: str
    opened_at: datetime
    last_event_at: datetime
    event_count: int
    normal_since: datetime | None
    acked_at: datetime | None
    acked_by: int | None
    cleared_at: datetime | None
    cleared_by: int | None
    clear_reason: str | None
    note: str | None


class AlarmNote(Input):
    note: Annotated[str, StringConstraints(max_length=2000, strip_whitespace=True)] | None = None


class AuditPublic(Public):
    id: int
    actor_user_id: int | None
    action: str
    target_type: str
    target_id: str
    detail: dict[str, Any]
    created_at: datetime
