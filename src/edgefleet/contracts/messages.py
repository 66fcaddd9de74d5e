"""Message schemas, one per channel (see DESIGN.md, "Wire contract")."""

import base64
from collections.abc import Iterable
from typing import Annotated, Final, Literal, Self, get_args

from pydantic import Field, StringConstraints, model_validator

from edgefleet.contracts.base import (
    MAX_THUMBNAIL_B64_CHARS,
    Base64Text,
    Count,
    DeviceId,
    DeviceKind,
    Fraction,
    Int8,
    Name,
    Sha256Hex,
    ShortText,
    Version,
    VersionedMessage,
    WireModel,
)
from edgefleet.contracts.explanation import CommissioningReport, CommissioningStatus, Explanation

EventKind = Literal["anomaly", "person", "rule", "sensor_fault", "drift", "commissioning"]
EVENT_KINDS: Final[tuple[str, ...]] = get_args(EventKind)
Severity = Literal["info", "warning", "critical"]
# provisioning: waiting for network settings; commissioning: learning its baseline;
# running: scoring; degraded: model unavailable, rule-based checks only.
DeviceMode = Literal["provisioning", "commissioning", "running", "degraded"]
OtaStateName = Literal[
    "DOWNLOADING", "DOWNLOADED", "VERIFIED", "UPDATING", "UPDATED", "FAILED", "ROLLED_BACK"
]
OTA_STATES: Final[tuple[str, ...]] = get_args(OtaStateName)
CommandName = Literal["recommission", "reset_network", "reboot", "publish_status"]
OtaAction = Literal["update", "rollback", "cancel"]
CommandId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
HttpUrl = Annotated[str, StringConstraints(max_length=512, pattern=r"^https?://[^\s]+$")]


class DeviceMessage(VersionedMessage):
    """Fields every device -> server message carries."""

    device_id: DeviceId
    seq: Count = Field(description="per-device, monotonically increasing; (device_id, seq) is unique")
    clock_synced: bool = Field(
        default=True, description="False when the device has no SNTP time and `ts` is its own estimate"
    )


class Status(DeviceMessage):
    """Retained on `status`; the MQTT last will publishes the `offline` form."""

    state: Literal["online", "offline"]
    kind: DeviceKind
    mode: DeviceMode | None = None
    firmware_version: Version
    runtime_version: Version | None = None
    model_id: Name | None = None
    model_version: Version | None = None


class Event(DeviceMessage):
    """Something happened on the device. `active=False` says the condition cleared."""

    kind: EventKind
    active: bool = True
    severity: Severity = "warning"
    score: float | None = None
    threshold: float | None = None
    model_id: Name | None = None
    model_version: Version | None = None
    window: Count | None = Field(default=None, description="index of the window that decided it")
    features: dict[Name, float] = Field(default_factory=dict, max_length=32)
    reason: Name | None = Field(default=None, description="sensor fault reason, rule zone, drift statistic")
    message: ShortText | None = None
    person_count: Annotated[int, Field(ge=0, le=1000)] | None = None
    thumbnail_jpeg: Annotated[Base64Text, StringConstraints(max_length=MAX_THUMBNAIL_B64_CHARS)] | None = None
    explanation: Explanation | None = Field(
        default=None, description="anomaly events: the deviating features and a fault hint"
    )
    commissioning: CommissioningReport | None = Field(
        default=None,
        description="commissioning events: what the device learned and whether it can see faults",
    )

    @model_validator(mode="after")
    def _fields_required_by_kind(self) -> Self:
        if self.kind == "anomaly" and (self.score is None or self.threshold is None):
            raise ValueError("an anomaly event needs `score` and `threshold`")
        if self.kind == "person" and self.score is None:
            raise ValueError("a person event needs `score`")
        if self.kind in ("rule", "sensor_fault", "drift", "commissioning") and self.reason is None:
            raise ValueError(f"a {self.kind} event needs `reason`")
        if self.kind == "commissioning" and self.commissioning is None:
            raise ValueError("a commissioning event needs `commissioning`")
        return self


class Telemetry(DeviceMessage):
    """How the device is: a periodic summary of the last interval."""

    mode: DeviceMode
    uptime_s: Annotated[float, Field(ge=0)]
    interval_s: Annotated[float, Field(gt=0)]
    windows: Count = Field(description="windows (or frames) processed in the interval")
    anomaly_rate: Fraction | None = None
    score_p50: float | None = None
    score_p95: float | None = None
    score_max: float | None = None
    threshold: float | None = Field(
        default=None, description="the anomaly threshold in force (the device's own once commissioned)"
    )
    inference_us: Annotated[float, Field(ge=0)] | None = None
    arena_bytes: Count | None = None
    rejected: dict[Name, Count] = Field(default_factory=dict, max_length=16)
    outbox_depth: Count = 0
    outbox_dropped: Count = 0
    outbox_errors: Count = Field(
        default=0, description="outbox storage operations that failed (disk full, read-only, I/O error)"
    )
    drift: float | None = None
    commissioning: CommissioningStatus | None = Field(
        default=None,
        description="the outcome of the last commissioning (`blind`: trained faults no longer seen)",
    )
    fault_visibility: Fraction | None = Field(
        default=None, description="share of the card's known faults the current baseline still detects"
    )
    detections_per_hour: Annotated[float, Field(ge=0)] | None = None
    firmware_version: Version | None = None
    model_id: Name | None = None
    model_version: Version | None = None


class OtaState(DeviceMessage):
    """Progress of an over-the-air model update, device -> server."""

    state: OtaStateName
    rollout_id: Name | None = None
    model_id: Name | None = None
    model_version: Version | None = None
    active_slot: Literal["A", "B"] | None = None
    progress: Fraction | None = None
    reason: ShortText | None = None

    @model_validator(mode="after")
    def _failure_needs_reason(self) -> Self:
        if self.state in ("FAILED", "ROLLED_BACK") and not self.reason:
            raise ValueError(f"state {self.state} needs a `reason`")
        return self


class ServerMessage(VersionedMessage):
    """Fields every server -> device message carries."""

    device_id: DeviceId = Field(description="the addressed device; must match the topic")
    command_id: CommandId


class Command(ServerMessage):
    """A command on `cmd`."""

    command: CommandName
    args: dict[Name, str | int | float | bool] = Field(default_factory=dict, max_length=16)


MAX_ACK_RANGES: Final = 512


class Ack(VersionedMessage):
    """On `ack` (server -> device, QoS 1), after the database commit: these seqs of the device are
    done with, stored now or before (a resend), or refused as bad data (resending cannot help).

    The end-to-end acknowledgement: a device keeps a message in its outbox until a seq range here
    covers it; the broker's PUBACK only frees its in-flight window. Inclusive ranges, ascending."""

    device_id: DeviceId
    ranges: list[tuple[Count, Count]] = Field(min_length=1, max_length=MAX_ACK_RANGES)

    @model_validator(mode="after")
    def _ranges_ordered(self) -> Self:
        if any(lo > hi for lo, hi in self.ranges):
            raise ValueError("each ack range needs low <= high")
        return self

    def covers(self) -> list[int]:
        """Every seq acknowledged (ranges are short: a batch's seqs of one device)."""
        return [seq for lo, hi in self.ranges for seq in range(lo, hi + 1)]


def ack_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, merged inclusive ranges of `seqs`: {1, 2, 3, 7} -> [(1, 3), (7, 7)]."""
    out: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out


class SelfTestCase(WireModel):
    """A model input and the int8 output the new model must produce (within `tolerance` steps)."""

    input_int8: list[Int8] = Field(min_length=1, max_length=9216)
    expected_int8: list[Int8] = Field(min_length=1, max_length=64)
    tolerance: Annotated[int, Field(ge=0, le=16)] = 1


class ModelManifest(WireModel):
    """What a device needs to fetch and verify a model artifact."""

    model_id: Name
    model_version: Version
    url: HttpUrl
    sha256: Sha256Hex
    size: Annotated[int, Field(gt=0, le=16 * 1024 * 1024)]
    min_runtime_version: Version
    signature: Base64Text = Field(description="Ed25519 signature of the artifact bytes, base64")
    key_id: Name | None = None
    model_card_sha256: Sha256Hex | None = None
    self_test: list[SelfTestCase] = Field(default_factory=list, max_length=8)


class OtaCommand(ServerMessage):
    """A model update instruction on `ota/cmd`."""

    action: OtaAction
    rollout_id: Name | None = None
    manifest: ModelManifest | None = None

    @model_validator(mode="after")
    def _update_needs_manifest(self) -> Self:
        if self.action == "update" and self.manifest is None:
            raise ValueError("an update needs a `manifest`")
        return self


# A sampled window must leave room for the rest of the message inside the payload limit.
MAX_WINDOW_SAMPLE_B64_CHARS: Final = 56 * 1024
WindowEncoding = Literal["int16le"]


class WindowSample(DeviceMessage):
    """A raw sensor window the device scored as normal, sampled for retraining (on `sample`).

    `data` is base64 of little-endian int16 values, sample-major: `length` samples x len(`axes`)
    values; axis j's physical value (in the model card's sensor unit) is `value * scale[j]`.
    Devices send these only when configured to, rate-limited, never while commissioning.
    """

    model_id: Name | None = None
    model_version: Version | None = None
    window: Count = Field(description="index of the window on the device")
    sample_rate_hz: Annotated[float, Field(gt=0, le=1_000_000)]
    axes: list[Name] = Field(min_length=1, max_length=16)
    length: Annotated[int, Field(ge=2, le=1 << 16)] = Field(description="samples per axis")
    encoding: WindowEncoding = "int16le"
    scale: list[Annotated[float, Field(gt=0)]] = Field(min_length=1, max_length=16)
    data: Annotated[Base64Text, StringConstraints(max_length=MAX_WINDOW_SAMPLE_B64_CHARS)]
    score: float | None = Field(default=None, description="the window's anomaly score on the device")
    threshold: float | None = Field(default=None, description="the threshold in force on the device")

    @model_validator(mode="after")
    def _data_matches_shape(self) -> Self:
        if len(self.scale) != len(self.axes):
            raise ValueError(f"`scale` has {len(self.scale)} entries for {len(self.axes)} axes")
        expected = self.length * len(self.axes) * 2
        size = len(base64.b64decode(self.data))
        if size != expected:
            raise ValueError(
                f"`data` holds {size} bytes; {self.length} samples x {len(self.axes)} axes of int16 "
                f"need {expected}"
            )
        return self
