"""The training config: a validated YAML file (`edgefleet model train CONFIG.yaml`).

Paths may use `{shared}` (EDGEFLEET_SHARED) and `{home}` (EDGEFLEET_HOME); relative paths are
relative to the current directory.
"""

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgefleet.ml.errors import ConfigError

PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]
FeatureSetName = Literal["stats", "spectral"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitConfig(_Strict):
    """Fractions of each normal recording/run, in time order: train, then calibration, then test."""

    train: Fraction = 0.6
    calibration: Fraction = 0.2

    @model_validator(mode="after")
    def _leaves_test(self) -> Self:
        if self.train + self.calibration >= 1:
            raise ValueError("train + calibration must leave a test fraction (< 1)")
        return self


class SynthSegment(_Strict):
    label: str = Field(pattern=r"^[A-Za-z0-9_.:+-]+$")
    fault: str = "normal"
    seconds: PositiveFloat
    severity: Annotated[float, Field(ge=0)] = 1.0
    speed: PositiveFloat = 1.0
    gain: PositiveFloat = 1.0


class SynthConfig(_Strict):
    """How `edgefleet data synth` (and `model train` when the CSV is missing) generates format (a)."""

    seed: int = 0
    machine: dict[str, Any] = Field(default_factory=dict)  # dsp.MachineConfig overrides
    segments: list[SynthSegment] = Field(min_length=1)


class DataConfig(_Strict):
    format: Literal["csv_table", "window_folder", "npz"]
    path: str
    sample_rate_hz: PositiveFloat
    window: Annotated[int, Field(ge=2, le=1 << 16)]
    hop: Annotated[int, Field(ge=1, le=1 << 16)]
    test_hop: Annotated[int, Field(ge=1, le=1 << 16)] | None = None  # hop for anomaly test windows
    axes: list[str] = Field(min_length=1, max_length=16)
    units: list[str] = Field(min_length=1, max_length=16)
    range_min: list[float]
    range_max: list[float]
    label_column: str = "label"
    normal: list[str] = Field(min_length=1)  # labels / class folders / npz keys that are normal
    anomaly: list[str] | None = None  # None: everything else
    split: SplitConfig = SplitConfig()
    reject_dropouts: bool = True  # drop windows with an all-zero sample (multi-axis), counted
    synth: SynthConfig | None = None

    @model_validator(mode="after")
    def _per_axis(self) -> Self:
        n = len(self.axes)
        if not len(self.units) == len(self.range_min) == len(self.range_max) == n:
            raise ValueError("units, range_min and range_max need one entry per axis")
        return self


class FeaturesConfig(_Strict):
    sets: list[FeatureSetName] = Field(default_factory=lambda: list[FeatureSetName](["stats"]), min_length=1)
    bands_hz: list[tuple[float, float]] = Field(default_factory=list)


class ModelConfig(_Strict):
    hidden: list[Annotated[int, Field(ge=1, le=1024)]] = Field(
        default_factory=lambda: [12, 8, 12], min_length=1
    )
    activation: Literal["relu", "tanh"] = "relu"


class TrainingConfig(_Strict):
    epochs: Annotated[int, Field(ge=1)] = 300
    batch_size: Annotated[int, Field(ge=1)] = 32
    learning_rate: PositiveFloat = 0.003
    patience: Annotated[int, Field(ge=1)] = 20
    validation_fraction: Fraction = 0.2  # of the training windows (the last ones), for early stopping
    seed: int = 0


class QuantizationConfig(_Strict):
    representative_windows: Annotated[int, Field(ge=1)] = 300


class ThresholdConfig(_Strict):
    policy: Literal["percentile", "target_far"] = "percentile"
    percentile: Annotated[float, Field(gt=0, lt=100)] = 99.0
    target_false_alarm_rate: Annotated[float, Field(gt=0, lt=1)] | None = None

    @model_validator(mode="after")
    def _target(self) -> Self:
        if self.policy == "target_far" and self.target_false_alarm_rate is None:
            raise ValueError("policy target_far needs target_false_alarm_rate")
        return self


class PruningConfig(_Strict):
    enabled: bool = False
    sparsity: Fraction = 0.5
    fine_tune_epochs: Annotated[int, Field(ge=1)] = 30


class DistillationConfig(_Strict):
    enabled: bool = False
    student_hidden: list[Annotated[int, Field(ge=1, le=1024)]] = Field(default_factory=lambda: [8, 4, 8])
    epochs: Annotated[int, Field(ge=1)] = 150


class TrainConfig(_Strict):
    model_id: str = Field(pattern=r"^[A-Za-z0-9_.:+-]{1,64}$")
    model_version: str = Field(default="1.0.0", pattern=r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}$")
    description: str | None = Field(default=None, max_length=256)
    data: DataConfig
    features: FeaturesConfig = FeaturesConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    quantization: QuantizationConfig = QuantizationConfig()
    threshold: ThresholdConfig = ThresholdConfig()
    kmeans_clusters: Annotated[int, Field(ge=1, le=256)] = 8
    pruning: PruningConfig = PruningConfig()
    distillation: DistillationConfig = DistillationConfig()
    targets: list[str] = Field(default_factory=lambda: ["esp32-s3", "esp32", "cortex-m4f", "nrf52840"])


def expand_path(text: str, variables: dict[str, str]) -> Path:
    try:
        return Path(text.format(**variables)).expanduser()
    except (KeyError, IndexError, ValueError) as err:
        raise ConfigError(f"cannot expand path {text!r} (known: {', '.join(variables)}): {err}") from err


def parse_config(data: object, source: str = "<config>") -> TrainConfig:
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"{source}: invalid config: {problems}") from err


def load_config(path: Path | str) -> tuple[TrainConfig, str]:
    """Read and validate a YAML config; returns it and the sha256 of the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from err
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML: {err}") from err
    return parse_config(data, str(path)), hashlib.sha256(raw).hexdigest()
