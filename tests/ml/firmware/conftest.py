"""A small synthetic model trained by the model factory's own pipeline, shared by the firmware tests."""

import ctypes
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.ml.helpers import config, tiny_synthetic

if TYPE_CHECKING:
    from tests.ml.firmware.card_c import Firmware
    from tests.ml.firmware.ota_kit import Signer


def train_tiny(root: Path, synth_seed: int | None = None, **overrides: Any) -> Path:
    """Train a small spectral+stats model on about a minute of synthetic data; returns its directory.
    `synth_seed`: another recording of the same machine (a retrained model: other standardization,
    quantization and threshold, the same features)."""
    from edgefleet.ml.pipeline import train
    from edgefleet.ml.synthdata import write_synthetic

    data = tiny_synthetic(root / "tiny.csv")
    if synth_seed is not None:
        data["data"]["synth"]["seed"] = synth_seed
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


@pytest.fixture(scope="session")
def fleet_lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    """The fleet modules (ef_json, ef_wire, ef_outbox, ef_cmd, ef_provision), built once."""
    from tests.ml.firmware.fleet_c import build_fleet

    return build_fleet(tmp_path_factory.mktemp("fleet-c"))


@pytest.fixture(scope="session")
def card_fw(synth_model: Path, tmp_path_factory: pytest.TempPathFactory) -> "Firmware":
    """The synthetic model's project with its model card reader, core and OTA checks, built once."""
    from tests.ml.firmware.card_c import card_firmware

    return card_firmware(synth_model, tmp_path_factory.mktemp("fw-card"))


@pytest.fixture(scope="session")
def ota_lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    """The OTA core with the fleet modules and libsodium, built once (skips without them)."""
    from tests.ml.firmware.ota_kit import built_ota

    return built_ota(tmp_path_factory.mktemp("fleet-ota"))


@pytest.fixture(scope="session")
def signer() -> "Signer":
    """The organization's Ed25519 key that signs the OTA packages of the firmware tests."""
    from tests.ml.firmware.ota_kit import Signer

    return Signer()
