"""The `train-vision` config (YAML, strict)."""

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgefleet.ml.errors import ConfigError
from edgefleet.ml.targets import TARGETS

LABELS = ("no_person", "person")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VisionData(_Strict):
    root: Path = Field(description="folder with one subfolder per class: person/ and no_person/")
    image_size: tuple[int, int] = (96, 96)
    validation_fraction: Annotated[float, Field(gt=0, lt=0.5)] = 0.15
    test_fraction: Annotated[float, Field(gt=0, lt=0.5)] = 0.2
    min_images_per_class: Annotated[int, Field(ge=2)] = 8


class VisionModelConfig(_Strict):
    widths: list[Annotated[int, Field(ge=1, le=256)]] = Field(
        default=[8, 16, 32, 64], min_length=2, max_length=8
    )
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.2


class Augmentation(_Strict):
    flip: bool = True
    brightness: Annotated[float, Field(ge=0, le=1)] = 0.2
    contrast: Annotated[float, Field(ge=0, le=1)] = 0.2
    shift: Annotated[float, Field(ge=0, le=0.5)] = 0.1
    zoom: Annotated[float, Field(ge=0, le=0.5)] = 0.1


class VisionTraining(_Strict):
    epochs: Annotated[int, Field(ge=1, le=1000)] = 40
    batch_size: Annotated[int, Field(ge=1, le=1024)] = 32
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.003
    patience: Annotated[int, Field(ge=1)] = 8


class VisionConfig(_Strict):
    model_id: str = "person-tiny"
    model_version: str = "1"
    seed: int = 42
    data: VisionData
    model: VisionModelConfig = Field(default_factory=VisionModelConfig)
    augment: Augmentation = Field(default_factory=Augmentation)
    training: VisionTraining = Field(default_factory=VisionTraining)
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.6
    representative_images: Annotated[int, Field(ge=8)] = 200
    targets: list[str] = Field(default_factory=lambda: list(TARGETS))

    @model_validator(mode="after")
    def _known_targets(self) -> "VisionConfig":
        unknown = [t for t in self.targets if t not in TARGETS]
        if unknown:
            raise ValueError(f"unknown MCU target(s) {unknown}; known: {', '.join(TARGETS)}")
        return self


def load_vision_config(path: Path) -> VisionConfig:
    """Read a YAML config; a relative data root is taken relative to the config file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    try:
        config = VisionConfig.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()[:5])
        raise ConfigError(f"{path}: {problems}") from err
    if not config.data.root.is_absolute():
        config.data.root = (path.parent / config.data.root).resolve()
    return config
