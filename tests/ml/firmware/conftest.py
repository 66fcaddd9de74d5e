"""A small synthetic model trained by the model factory's own pipeline, shared by the firmware tests."""

from pathlib import Path
from typing import Any

import pytest

from tests.ml.helpers import config, tiny_synthetic


def train_tiny(root: Path, **overrides: Any) -> Path:
    """Train a small spectral+stats model on about a minute of synthetic data; returns its directory."""
    from edgefleet.ml.pipeline import train
    from edgefleet.ml.synthdata import write_synthetic

    data = tiny_synthetic(root / "tiny.csv")
    data["data"]["synth"]["segments"] = [
        {"label": "normal", "seconds": 45},
        {"label": "normal_fast", "seconds": 20, "speed": 1.1},
        {"label": "imbalance", "fault": "imbalance", "seconds": 8},
        {"label": "bearing_outer", "fault": "bearing_outer", "seconds": 8},
    ]
    data["features"] = {"sets": ["stats", "spectral"], "bands_hz": [[2, 10], [10, 20], [20, 50], [50, 100]]}
    data["training"] = {"epochs": 15, "batch_size": 64, "learning_rate": 0.01, "patience": 5}
    data["targets"] = ["esp32-s3"]
    data.update(overrides)
    cfg = config(data)
    assert cfg.data.synth is not None
    write_synthetic(cfg.data, cfg.data.synth, root / "tiny.csv")
    out = root / "model"
    train(cfg, out)
    return out


@pytest.fixture(scope="session")
def synth_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("fw-model"))


def train_cwru(root: Path, shared: Path) -> Path:
    """The shipped CWRU config, with few epochs and no pruning/distillation, so it trains in seconds."""
    import yaml

    from edgefleet.ml import parse_config
    from edgefleet.ml.pipeline import train

    data = yaml.safe_load(Path(__file__).parents[3].joinpath("configs/cwru.yaml").read_text())
    data["data"]["path"] = str(shared / "datasets/cwru/cwru_1797_DE_float32.npz")
    data["training"].update(epochs=5, patience=3)
    data["quantization"]["representative_windows"] = 50
    data["pruning"] = {"enabled": False}
    data["distillation"] = {"enabled": False}
    out = root / "cwru"
    train(parse_config(data, "cwru-test"), out)
    return out
