"""API schemas: separate Create / Update / Public models per resource."""

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

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
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:+-]+$")]
DeviceKindStr = Literal["vibration", "camera"]
EventKindStr = Literal["anomaly", "person", "rule", "sensor_fault", "drift", "commissioning"]
assert set(DEVICE_KINDS) == {"vibration", "camera"} and set(EVENT_KINDS) == {
    "anomaly",
    "person",
    "rule",
    "sensor_fault",
    "drift",
    "commissioning",
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
    tags: list[str] = Field(default_factory=list)
    created_at: datetime


class DeviceUpdate(Input):
    name: Text128 | None = None
    tags: list[Tag] | None = Field(default=None, max_length=32, description="replaces the device's tags")


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
    ota_key_id: str = Field(description="id of the organization's model signing key")
    ota_public_key: str = Field(description="the Ed25519 public key model packages are signed with, base64")


class CommandCreate(Input):
    command: Literal["recommission", "reset_network", "reboot", "publish_status"]
    args: dict[Text64, str | int | float | bool] = Field(default_factory=dict, max_length=16)


class CommandSent(BaseModel):
    command_id: str
    topic: str


# --- events, telemetry, statistics, alarms, audit ----------------------------------------------
TimeFlag = Literal["future", "past"]


class EventPublic(Public):
    id: int
    device_id: str
    seq: int
    ts: datetime = Field(description="the device's time (data: shown, compared; see `time_flag`)")
    received_at: datetime = Field(description="the server's time of receipt: retention and alarm timing")
    clock_synced: bool = Field(description="false when the device said its clock was not synchronized")
    time_flag: TimeFlag | None = Field(
        description="`future`: ts over 5 min after receipt; `past`: over a day before; null: plausible"
    )
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
    ts: datetime = Field(description="the device's time")
    received_at: datetime = Field(description="the server's time of receipt")
    clock_synced: bool
    time_flag: TimeFlag | None = Field(description="as on events: `future`, `past` or null")
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


class WindowSamplePublic(Public):
    """A sampled raw window (channel `sample`): `data` is base64 of little-endian int16, sample-major
    (`length` x len(`axes`)); axis j's value is `value * scale[j]`."""

    id: int
    device_id: str
    seq: int
    ts: datetime
    received_at: datetime
    device_kind: str
    model_id: str | None
    model_version: str | None
    window: int = Field(validation_alias="window_index")
    sample_rate_hz: float
    axes: list[str]
    length: int
    encoding: str
    scale: list[float]
    data: str
    score: float | None
    threshold: float | None


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


# --- model registry ----------------------------------------------------------------------------
class SigningKeyPublic(BaseModel):
    key_id: str
    public_key: str = Field(description="Ed25519 public key, base64 of the 32 raw bytes")


class ModelPublic(Public):
    id: int
    model_id: str
    version: str
    device_kind: str
    task: str
    sha256: str = Field(description="of the package bytes")
    size: int
    signature: str
    key_id: str
    card_sha256: str
    min_runtime_version: str
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    uploaded_by: int | None
    created_at: datetime
    is_default: bool = False
    self_test_cases: int = 0


class ModelDetail(ModelPublic):
    card: dict[str, Any]
    report: dict[str, Any] | None
    self_test: list[dict[str, Any]]


class FieldComparison(BaseModel):
    name: str
    a: Any
    b: Any
    delta: float | None = Field(default=None, description="b - a, when both are numbers")
    changed: bool


class ModelComparison(BaseModel):
    a: ModelPublic
    b: ModelPublic
    metrics: list[FieldComparison]
    card: list[FieldComparison]


# --- rollouts ----------------------------------------------------------------------------------
RolloutStateStr = Literal["running", "paused", "halted", "aborted", "completed"]


class RolloutTarget(Input):
    """Exactly one of: all devices of a kind, the devices with a tag, or a list of device ids."""

    device_kind: DeviceKindStr | None = None
    tag: Tag | None = None
    device_ids: list[DeviceIdStr] | None = Field(default=None, min_length=1, max_length=10_000)

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [v for v in (self.device_kind, self.tag, self.device_ids) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `device_kind`, `tag` or `device_ids`")
        return self


class RolloutCreate(Input):
    model_pk: int = Field(gt=0, description="the registry model's `id`")
    target: RolloutTarget
    stages: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=lambda: [5, 25, 100],
        min_length=1,
        max_length=10,
        description="cumulative percentages of the target, increasing, ending at 100",
    )
    gate_s: float = Field(default=300.0, ge=0, le=7 * 86400, description="healthy time after UPDATED")
    device_timeout_s: float = Field(default=900.0, gt=0, le=7 * 86400)
    max_failures: int = Field(default=0, ge=0, le=100_000, description="more failures halt the rollout")
    auto_rollback: bool = True

    @model_validator(mode="after")
    def _stages_increase_to_100(self) -> Self:
        if any(b <= a for a, b in zip(self.stages, self.stages[1:], strict=False)):
            raise ValueError("stages must increase strictly")
        if self.stages[-1] != 100:
            raise ValueError("the last stage must be 100 (percent)")
        return self


class RolloutAbort(Input):
    rollback: bool = Field(default=False, description="also roll back the devices this rollout updated")


class RolloutDevicePublic(Public):
    device_id: str
    position: int
    stage: int
    state: str
    reason: str | None
    updated: bool
    failed: bool
    command_id: str | None
    sent_at: datetime | None
    updated_at: datetime | None
    updated_healthy_since: datetime | None


class RolloutStagePublic(BaseModel):
    index: int
    percent: int
    devices: int
    done: int = Field(description="healthy, or already on the version")
    failed: int
    in_progress: int = Field(description="commanded, not yet healthy or failed")
    pending: int
    state: Literal["waiting", "active", "passed"]


class RolloutPublic(Public):
    id: int
    model_pk: int
    model_id: str
    model_version: str
    target: dict[str, Any]
    stages: list[int]
    gate_s: float
    device_timeout_s: float
    max_failures: int
    auto_rollback: bool
    state: RolloutStateStr
    stage: int
    stage_started_at: datetime | None
    rollback: bool
    reason: str | None
    created_by: int | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    devices: int
    failures: int
    counts: dict[str, int] = Field(description="devices per state")


class RolloutDetail(RolloutPublic):
    stage_summary: list[RolloutStagePublic]
    device_states: list[RolloutDevicePublic]


# --- drift -------------------------------------------------------------------------------------
class DriftDevicePublic(Public):
    device_id: str
    model_id: str | None
    model_version: str
    ts: datetime = Field(description="time of the latest telemetry judged")
    drift: float | None
    score_p50: float | None
    score_p95: float | None
    p95_ratio: float | None = Field(description="device score p95 / the model card's score p95")
    consecutive: int = Field(description="out-of-limit intervals in a row on this model version")
    reason: str | None = Field(description="drift | score_p95 | drift+score_p95 while out of limit")
    out_since: datetime | None
    alarm_id: int | None = Field(description="the open drift alarm, if any")
    state: Literal["ok", "drifting"]


class DriftPointPublic(Public):
    ts: datetime
    drift: float | None
    score_p50: float | None
    score_p95: float | None


class DriftSeriesPublic(Public):
    model_id: str | None
    model_version: str
    card_p50: float | None = Field(description="score p50 on held-out normal data (model card)")
    card_p95: float | None
    drift_limit: float
    p95_limit: float | None = Field(description="drift_score_ratio_limit x card_p95")
    points: list[DriftPointPublic]


class DriftDeviceSeries(BaseModel):
    device_id: str
    since: datetime
    until: datetime
    series: list[DriftSeriesPublic] = Field(description="one per model version, oldest first")
