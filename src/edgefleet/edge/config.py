"""Device configuration: one pydantic model, loaded from YAML (`extra="forbid"`)."""

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from edgefleet.contracts import ContractError, key_id_for
from edgefleet.edge.clock import ClockConfig
from edgefleet.edge.commissioning import CommissioningConfig
from edgefleet.edge.decision import DebounceConfig, IsoRuleConfig
from edgefleet.edge.drift import DriftConfig
from edgefleet.edge.errors import ConfigError
from edgefleet.edge.guards import GuardConfig
from edgefleet.edge.samples import SampleUploadConfig


class MqttConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(default="mqtt://127.0.0.1:1883", pattern=r"^mqtts?://[^/\s:]+(:\d+)?/?$")
    username: str | None = None
    password: SecretStr | None = None
    keepalive_s: int = Field(default=30, ge=5)
    backoff_min_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    max_inflight: int = Field(
        default=50, ge=1, le=1000, description="messages published and not yet acknowledged by the broker"
    )
    delivery: Literal["end_to_end", "broker"] = Field(
        default="end_to_end",
        description="end_to_end: a message leaves the outbox when the server's `ack` covers it (the "
        "broker's PUBACK only frees the in-flight window); broker: on PUBACK (loses what a broker "
        "acknowledges but never delivers)",
    )
    ack_timeout_s: float = Field(
        default=15.0, gt=0, description="re-publish what the server has not acknowledged after this long"
    )
    ack_timeout_max_s: float = Field(
        default=120.0, gt=0, description="cap of the resend timeout, which doubles (jittered) per round"
    )

    @model_validator(mode="after")
    def _timeouts_ordered(self) -> "MqttConfig":
        if self.ack_timeout_max_s < self.ack_timeout_s:
            raise ValueError("ack_timeout_max_s must be >= ack_timeout_s")
        return self


class OutboxConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    directory: Path = Path(".edgefleet/outbox")
    max_messages: int = Field(default=10_000, ge=1)


class TrustedKey(BaseModel):
    """A model-signing public key the device accepts (Ed25519, base64 of the 32 raw bytes)."""

    model_config = ConfigDict(extra="forbid")

    key_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="contracts.key_id_for(public_key)")
    public_key: str

    @model_validator(mode="after")
    def _key_id_matches(self) -> "TrustedKey":
        try:
            expected = key_id_for(self.public_key)
        except ContractError as err:
            raise ValueError(f"trusted key {self.key_id}: {err}") from err
        if expected != self.key_id:
            raise ValueError(f"trusted key id {self.key_id} does not match its public key ({expected})")
        return self


class OtaConfig(BaseModel):
    """Over-the-air model updates (edge.ota): A/B slots under `directory`, signed packages only."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    directory: Path | None = Field(default=None, description="default: .edgefleet/ota/<device id>")
    trusted_keys: list[TrustedKey] = Field(default_factory=list, max_length=16)
    pending_windows: int = Field(
        default=30, ge=1, description="healthy windows before a new model is confirmed"
    )
    pending_s: float | None = Field(default=None, gt=0, description="and, if set, this many seconds")
    max_pending_boots: int = Field(default=1, ge=0, description="restarts tolerated while pending")
    require_self_test: bool = Field(default=True, description="refuse manifests without self-test cases")
    allow_downgrade: bool = Field(
        default=False, description="accept a signed package older than the running version of that model"
    )
    download_attempts: int = Field(default=8, ge=1, description="attempts without progress before FAILED")
    download_timeout_s: float = Field(default=30.0, gt=0)
    backoff_min_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)

    def directory_for(self, device_id: str) -> Path:
        return self.directory if self.directory is not None else Path(".edgefleet/ota") / device_id


class DeviceConfig(BaseModel):
    """Everything a device needs besides its model directory and its sensor source."""

    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    firmware_version: str = "0.1.0"
    backend: Literal["tflm", "int8ref"] = "tflm"
    arena_bytes: int | None = Field(default=None, ge=256, description="default: the model card's")
    telemetry_interval_s: float = Field(default=60.0, gt=0)
    guards: GuardConfig = Field(default_factory=GuardConfig)
    decision: DebounceConfig = Field(default_factory=DebounceConfig)
    fault: DebounceConfig = Field(default_factory=lambda: DebounceConfig(k=3, n=5, m=10, hysteresis=1.0))
    rule: IsoRuleConfig = Field(default_factory=IsoRuleConfig)
    shaft_hz: float | None = Field(
        default=None,
        gt=0,
        description="the machine's shaft rotation frequency, for fault hints on anomaly events; "
        "default: estimated from the normal spectrum",
    )
    rule_debounce: DebounceConfig = Field(
        default_factory=lambda: DebounceConfig(k=3, n=5, m=5, hysteresis=1.0)
    )
    commissioning: CommissioningConfig = Field(default_factory=CommissioningConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    clock: ClockConfig = Field(default_factory=ClockConfig)
    samples: SampleUploadConfig = Field(
        default_factory=SampleUploadConfig, description="upload sampled normal windows (retraining)"
    )
    ota: OtaConfig = Field(default_factory=OtaConfig)
    gpio_pin: int = 5


def load_device_config(path: Path, **overrides: object) -> DeviceConfig:
    """Read a YAML device config; `overrides` (e.g. from CLI options) win over the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return DeviceConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{path}: {err}") from err
