"""Small configs for fast tests."""

from pathlib import Path
from typing import Any

from edgefleet.ml import TrainConfig, parse_config


def tiny_synthetic(path: Path, **overrides: Any) -> dict[str, Any]:
    """A 6-axis 200 Hz synthetic config with a small dataset (about 3 minutes of data)."""
    data: dict[str, Any] = {
        "model_id": "tiny-synth",
        "data": {
            "format": "csv_table",
            "path": str(path),
            "sample_rate_hz": 200,
            "window": 128,
            "hop": 64,
            "test_hop": 128,
            "axes": ["ax", "ay", "az", "gx", "gy", "gz"],
            "units": ["g", "g", "g", "dps", "dps", "dps"],
            "range_min": [-2, -2, -2, -250, -250, -250],
            "range_max": [2, 2, 2, 250, 250, 250],
            "normal": ["normal", "normal_fast"],
            "synth": {
                "seed": 7,
                "machine": {"dropouts_per_s": 0.02},
                "segments": [
                    {"label": "normal", "seconds": 110},
                    {"label": "normal_fast", "seconds": 50, "speed": 1.1},
                    {"label": "imbalance", "fault": "imbalance", "seconds": 15},
                    {"label": "bearing_outer", "fault": "bearing_outer", "seconds": 15},
                    {"label": "looseness", "fault": "looseness", "seconds": 15},
                ],
            },
        },
        "features": {
            "sets": ["spectral"],
            "bands_hz": [[2, 10], [10, 20], [20, 35], [35, 50], [50, 70], [70, 100]],
        },
        "training": {"epochs": 60, "batch_size": 64, "learning_rate": 0.01, "patience": 10},
        "quantization": {"representative_windows": 100},
        "kmeans_clusters": 4,
        "targets": ["esp32-s3", "nrf52840"],
    }
    for key, value in overrides.items():
        data[key] = value
    return data


def config(data: dict[str, Any]) -> TrainConfig:
    return parse_config(data, "test")
