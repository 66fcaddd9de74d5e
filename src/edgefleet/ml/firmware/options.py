"""Settings of the generated firmware that are not in the model card (wiring, decisions, guards).

The decision and guard defaults equal the Python device runtime's (`edge.decision.DebounceConfig`,
`edge.guards.GuardConfig`, `edge.config.DeviceConfig.fault`), so the firmware decides as
`edgefleet device run` does; a test keeps them equal.
"""

from dataclasses import dataclass
from typing import Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


@dataclass(frozen=True)
class EspTarget:
    idf_target: str  # `idf.py set-target` name
    budget_target: str  # edgefleet.ml.targets name
    psram: bool  # ask for PSRAM (ignored if the module has none)
    default_sda: int
    default_scl: int


ESP_IDF_TARGETS: Final[dict[str, EspTarget]] = {
    "esp32s3": EspTarget("esp32s3", "esp32-s3", True, 8, 9),
    "esp32": EspTarget("esp32", "esp32", False, 21, 22),
}


class Debounce(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k: int = Field(default=3, ge=1, le=32)
    n: int = Field(default=5, ge=1, le=32)
    m: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _k_le_n(self) -> Self:
        if self.k > self.n:
            raise ValueError("debounce needs k <= n")
        return self


class RuleOptions(BaseModel):
    """ISO 10816-style severity rule on RMS velocity of the accelerometer axes (unit `g`)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    to_m_s2: float = Field(default=9.80665, gt=0, description="multiply g by this to get m/s^2")
    band_hz: tuple[float, float] = (10.0, 1000.0)
    zone_limits_mm_s: tuple[float, float, float] = (1.8, 4.5, 11.2)
    alarm_zone: str = Field(default="C", pattern="^[BCD]$")
    debounce: Debounce = Field(default_factory=lambda: Debounce(k=3, n=5, m=5))


class DriftOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    halflife_windows: float = Field(default=200.0, gt=0)
    limit: float = Field(default=1.5, gt=0)
    clear_below: float = Field(default=1.0, gt=0)
    min_windows: int = Field(default=50, ge=1)


class CommissioningOptions(BaseModel):
    """On-device commissioning (`ef_commission.h`), as `edge.commissioning.CommissioningConfig`."""

    model_config = ConfigDict(extra="forbid")

    windows: int = Field(default=0, ge=0, description="clean windows to learn from; 0 = use the card as is")
    target_far: float | None = Field(default=None, gt=0, lt=1, description="default: the model card's")
    margin: float = Field(default=1.0, gt=0)
    confidence: float = Field(default=0.9, ge=0.5, lt=1)
    folds: int = Field(default=5, ge=2, le=20)
    min_std_fraction: float = Field(default=1.0, gt=0)
    min_fault_visibility: float = Field(default=0.5, gt=0, le=1)
    max_spread_ratio: float = Field(default=4.0, gt=1)
    capacity: int = Field(
        default=256,
        ge=8,
        le=4096,
        description="windows the firmware's buffers hold (the most `recommission` may ask for); "
        "256 allow the distribution-free bound at 1 % and 90 % (230)",
    )

    @model_validator(mode="after")
    def _windows_fit(self) -> Self:
        if 0 < self.windows < 8:
            raise ValueError(f"commissioning needs 0 (off) or at least 8 windows, got {self.windows}")
        if self.windows > self.capacity:
            raise ValueError(f"commissioning windows {self.windows} exceed the capacity {self.capacity}")
        return self


CameraBoard = Literal["esp32s3-eye", "xiao-esp32s3-sense", "esp32-cam"]
CameraFrameSize = Literal["96X96", "QQVGA", "240X240", "QVGA", "CIF", "VGA"]


class CameraOptions(BaseModel):
    """The camera node (a person-detection card). Detection defaults equal the twin's
    `edge.camera.DetectionConfig` (a test keeps them equal)."""

    model_config = ConfigDict(extra="forbid")

    board: CameraBoard | None = Field(default=None, description="default: esp32s3-eye, esp32-cam on esp32")
    frame_size: CameraFrameSize = "QVGA"
    pixel_format: Literal["grayscale", "rgb565"] = "grayscale"
    frame_interval_ms: int = Field(default=500, ge=50, le=60_000)
    threshold_on: float | None = Field(default=None, gt=0, le=1, description="default: the card's, else 0.6")
    threshold_off: float = Field(default=0.4, ge=0, lt=1)
    smoothing: float = Field(default=0.5, gt=0, le=1)
    send_thumbnail: bool = True
    thumbnail_max_side: int = Field(default=160, ge=16, le=640)
    qr_confirmations: int = Field(
        default=2, ge=1, le=16, description="identical reads of the provisioning QR code before it is taken"
    )
    qr_timeout_s: int = Field(
        default=300, ge=0, le=86_400, description="QR scanning reports what it saw after this long (0: never)"
    )
    thumbnail_b64_max: int = Field(
        default=6144,
        ge=512,
        le=48 * 1024,
        description="base64 characters; the event must fit a durable outbox record (8 KiB in ef_mqtt)",
    )


class FirmwareOptions(BaseModel):
    """Firmware settings; every field has a default that matches the Python runtime."""

    model_config = ConfigDict(extra="forbid")

    firmware_version: str = Field(default="0.1.0", pattern=r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}$")
    decision: Debounce = Field(default_factory=Debounce)
    hysteresis: float = Field(default=0.9, gt=0, le=1)
    fault: Debounce = Field(default_factory=lambda: Debounce(k=3, n=5, m=10))
    range_tolerance: float = Field(default=0.01, ge=0)
    saturation_fraction: float = Field(default=0.995, gt=0, le=1)
    saturation_run: int = Field(default=4, ge=2)
    stuck_ptp: float = Field(default=0.0, ge=0)
    frozen_run: int = Field(default=4, ge=2)
    gap_factor: float = Field(default=1.5, gt=1)
    rule: RuleOptions = Field(default_factory=RuleOptions)
    drift: DriftOptions = Field(default_factory=DriftOptions)
    camera: CameraOptions = Field(default_factory=CameraOptions)
    commissioning: CommissioningOptions = Field(default_factory=CommissioningOptions)
    key_features: int = Field(default=3, ge=0, le=32)
    telemetry_interval_s: int = Field(default=60, ge=1)
    alert_gpio: int = Field(default=5, ge=0, le=48)
    reset_gpio: int | None = Field(
        default=None,
        ge=-1,
        le=48,
        description="the reset button (active low), -1: none; default: GPIO 0 (BOOT), none on a camera "
        "board that wires GPIO 0 to the camera; a camera pin is refused",
    )
    i2c_sda: int | None = Field(default=None, ge=0, le=48, description="default: the target's")
    i2c_scl: int | None = Field(default=None, ge=0, le=48, description="default: the target's")
    i2c_address: int = Field(default=0x68, ge=0x08, le=0x77)
    arena_margin: float = Field(default=0.25, ge=0, le=4, description="extra arena, fraction of the card's")
    arena_margin_min_bytes: int = Field(default=1024, ge=0)
    outbox_slots: int = Field(default=64, ge=1, le=1000)
    server_ca_pem: str | None = Field(
        default=None,
        max_length=16384,
        pattern=r"-----BEGIN CERTIFICATE-----",
        description="the server's CA (PEM, e.g. `edgefleet server certs`' ca.crt) to embed; "
        "None: verify the server with ESP-IDF's bundle of public CAs",
    )
