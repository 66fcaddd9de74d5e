"""The model card: everything a device and the server need to know about an exported model.

The model factory writes it next to `model.tflite`; devices read it to reproduce the features,
the standardization and the threshold exactly; the registry stores and compares it.
"""

from typing import Annotated, Final, Literal, Self

from pydantic import Field, model_validator

from edgefleet.contracts.base import (
    Count,
    DeviceKind,
    Fraction,
    Name,
    Sha256Hex,
    ShortText,
    UtcDatetime,
    Version,
    WireModel,
)

MODEL_CARD_SCHEMA_VERSION: Final = 1
ModelTask = Literal["anomaly_detection", "person_detection", "classification"]
TensorDtype = Literal["int8", "uint8", "int16", "int32", "float32"]
FeatureSet = Literal["stats", "spectral"]
ThresholdPolicy = Literal["percentile", "target_far", "fixed"]
PositiveFloat = Annotated[float, Field(gt=0)]


class Quantization(WireModel):
    """Affine quantization: real = scale * (q - zero_point)."""

    scale: PositiveFloat
    zero_point: int


class TensorSpec(WireModel):
    shape: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=6)
    dtype: TensorDtype
    quantization: Quantization | None = None


class SensorSpec(WireModel):
    """The sensor the model was trained for; devices guard their inputs with it."""

    axes: list[Name] = Field(min_length=1, max_length=16)
    units: list[Name] = Field(min_length=1, max_length=16)
    range_min: list[float] = Field(min_length=1, max_length=16)
    range_max: list[float] = Field(min_length=1, max_length=16)

    @model_validator(mode="after")
    def _one_entry_per_axis(self) -> Self:
        n = len(self.axes)
        if not len(self.units) == len(self.range_min) == len(self.range_max) == n:
            raise ValueError("units, range_min and range_max need one entry per axis")
        if any(lo >= hi for lo, hi in zip(self.range_min, self.range_max, strict=True)):
            raise ValueError("range_min must be below range_max on every axis")
        return self


class FeatureSpec(WireModel):
    """How raw samples become the model's input vector (implemented once, in `dsp`)."""

    sample_rate_hz: PositiveFloat
    window: Annotated[int, Field(ge=2, le=1 << 16)]
    hop: Annotated[int, Field(ge=1, le=1 << 16)]
    sets: list[FeatureSet] = Field(min_length=1)
    bands_hz: list[tuple[float, float]] = Field(default_factory=list, max_length=64)
    names: list[Name] = Field(min_length=1, max_length=512)
    # Standardization applied before the model: x' = (x - mean) / std.
    mean: list[float]
    std: list[PositiveFloat]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not len(self.mean) == len(self.std) == len(self.names):
            raise ValueError("mean and std need one entry per feature name")
        if "spectral" in self.sets and not self.bands_hz:
            raise ValueError("the spectral set needs `bands_hz`")
        nyquist = self.sample_rate_hz / 2
        for lo, hi in self.bands_hz:
            if not 0 <= lo < hi <= nyquist:
                raise ValueError(f"band ({lo}, {hi}) Hz must satisfy 0 <= low < high <= {nyquist} (Nyquist)")
        return self


class ThresholdSpec(WireModel):
    value: float
    policy: ThresholdPolicy
    percentile: Annotated[float, Field(gt=0, lt=100)] | None = None
    target_false_alarm_rate: Fraction | None = None


class ScoreStats(WireModel):
    """Distribution of the anomaly score on held-out normal data (for commissioning and drift)."""

    mean: float
    std: Annotated[float, Field(ge=0)]
    p50: float
    p95: float
    p99: float
    max: float
    count: Count


class FaultProbe(WireModel):
    """A raw feature vector of a known fault window from the model factory's test set.

    After commissioning, a device re-normalizes these with its field baseline and scores them: if
    they no longer cross the new threshold, the device has gone blind to the faults it was trained
    on and says so (`contracts.CommissioningReport`).
    """

    label: Name
    features: list[float] = Field(
        min_length=1, max_length=512, description="raw features, feature_spec order"
    )


MAX_FAULT_PROBES: Final = 32


class Lineage(WireModel):
    parent_model: ShortText | None = None
    config_sha256: Sha256Hex | None = None
    framework: ShortText | None = None


class ModelCard(WireModel):
    """Schema of `model_card.json`."""

    schema_version: Literal[1] = Field(default=MODEL_CARD_SCHEMA_VERSION, alias="schema")
    model_id: Name
    model_version: Version
    task: ModelTask
    device_kind: DeviceKind
    created: UtcDatetime
    description: ShortText | None = None
    input: TensorSpec
    output: TensorSpec
    labels: list[Name] = Field(default_factory=list, max_length=256)
    sensor: SensorSpec | None = None
    feature_spec: FeatureSpec | None = None
    threshold: ThresholdSpec | None = None
    score_stats: ScoreStats | None = None
    ops: list[Name] = Field(min_length=1, max_length=128)
    flash_bytes: Count
    arena_bytes: Count
    min_runtime_version: Version = "0.1.0"
    training_data_sha256: Sha256Hex | None = None
    metrics: dict[Name, float] = Field(default_factory=dict, max_length=256)
    fault_probes: list[FaultProbe] = Field(default_factory=list, max_length=MAX_FAULT_PROBES)
    lineage: Lineage = Field(default_factory=Lineage)

    @model_validator(mode="after")
    def _task_needs(self) -> Self:
        if self.task == "anomaly_detection" and (self.feature_spec is None or self.threshold is None):
            raise ValueError("an anomaly_detection model card needs `feature_spec` and `threshold`")
        n = len(self.feature_spec.names) if self.feature_spec else None
        for probe in self.fault_probes:
            if n is None or len(probe.features) != n:
                raise ValueError(f"fault probe `{probe.label}` needs one value per feature ({n})")
        return self
