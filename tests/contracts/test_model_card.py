from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edgefleet.contracts import (
    ContractError,
    FeatureSpec,
    MessageValidationError,
    ModelCard,
    SchemaVersionError,
    SensorSpec,
    dump_model_card,
    load_model_card,
)


def card_fields() -> dict[str, Any]:
    return {
        "model_id": "vib-ae",
        "model_version": "1",
        "task": "anomaly_detection",
        "device_kind": "vibration",
        "created": datetime(2026, 11, 23, tzinfo=UTC),
        "input": {"shape": [1, 3], "dtype": "int8", "quantization": {"scale": 0.05, "zero_point": -3}},
        "output": {"shape": [1, 3], "dtype": "int8", "quantization": {"scale": 0.04, "zero_point": 1}},
        "sensor": {"axes": ["ax"], "units": ["g"], "range_min": [-2.0], "range_max": [2.0]},
        "feature_spec": {
            "sample_rate_hz": 200.0,
            "window": 128,
            "hop": 128,
            "sets": ["stats"],
            "names": ["ax_mean", "ax_std", "ax_p2p"],
            "mean": [0.0, 0.1, 0.5],
            "std": [1.0, 0.2, 0.3],
        },
        "threshold": {"value": 0.8, "policy": "percentile", "percentile": 99.0},
        "ops": ["FULLY_CONNECTED", "RELU"],
        "flash_bytes": 4096,
        "arena_bytes": 1024,
        "training_data_sha256": "0" * 64,
        "metrics": {"int8.auc": 0.995},
    }


def test_model_card_file_round_trip(tmp_path: Path) -> None:
    card = ModelCard.model_validate(card_fields())
    path = tmp_path / "model_card.json"
    path.write_text(dump_model_card(card))
    assert load_model_card(path) == card
    assert '"schema": 1' in path.read_text()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"threshold": None}, "needs `feature_spec` and `threshold`"),
        ({"ops": []}, "ops"),
        ({"flash_bytes": -1}, "flash_bytes"),
        (
            {"input": {"shape": [1, 3], "dtype": "int8", "quantization": {"scale": 0, "zero_point": 0}}},
            "scale",
        ),
    ],
)
def test_inconsistent_cards_are_refused(change: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        ModelCard.model_validate({**card_fields(), **change})


def test_feature_spec_checks_lengths_and_bands() -> None:
    spec = card_fields()["feature_spec"]
    with pytest.raises(ValidationError, match="one entry per feature"):
        FeatureSpec.model_validate({**spec, "std": [1.0]})
    with pytest.raises(ValidationError, match="needs `bands_hz`"):
        FeatureSpec.model_validate({**spec, "sets": ["stats", "spectral"]})
    with pytest.raises(ValidationError, match="Nyquist"):
        FeatureSpec.model_validate({**spec, "sets": ["spectral"], "bands_hz": [(10.0, 150.0)]})
    with pytest.raises(ValidationError, match="std"):
        FeatureSpec.model_validate({**spec, "std": [1.0, 0.0, 1.0]})


def test_sensor_spec_needs_ordered_ranges_per_axis() -> None:
    with pytest.raises(ValidationError, match="one entry per axis"):
        SensorSpec(axes=["ax", "ay"], units=["g"], range_min=[-2.0], range_max=[2.0])
    with pytest.raises(ValidationError, match="below range_max"):
        SensorSpec(axes=["ax"], units=["g"], range_min=[2.0], range_max=[-2.0])


def test_loading_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ContractError, match=r"nope\.json"):
        load_model_card(missing)
    broken = tmp_path / "broken.json"
    broken.write_text('{"model_id": 3}')
    with pytest.raises(MessageValidationError, match=r"broken\.json"):
        load_model_card(broken)
    future = tmp_path / "future.json"
    future.write_text(
        dump_model_card(ModelCard.model_validate(card_fields())).replace('"schema": 1', '"schema": 9')
    )
    with pytest.raises(SchemaVersionError):
        load_model_card(future)
