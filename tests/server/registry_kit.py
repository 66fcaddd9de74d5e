"""Model directories' files for registry tests, without training: a card and a tiny real model.

The server walks, checks and loads every model before it signs it (services/model_check.py), so the
model here is real: one int8 FULLY_CONNECTED layer built without TensorFlow (tests/support/tiny_tflite.py);
tests/ml and tests/cli use trained models."""

import json
from typing import Any

import httpx
from fastapi.testclient import TestClient

from tests.server.conftest import Account
from tests.support.tiny_tflite import run, tiny_fc_model

FAKE_TFLITE = tiny_fc_model()  # the name stays: "not a trained model"
N_FEATURES = 4


def card(
    model_id: str = "press-ae",
    version: str = "1.0.0",
    device_kind: str = "vibration",
    **overrides: Any,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "schema": 1,
        "model_id": model_id,
        "model_version": version,
        "task": "anomaly_detection",
        "device_kind": device_kind,
        "created": "2026-12-01T10:00:00Z",
        "input": {
            "shape": [1, N_FEATURES],
            "dtype": "int8",
            "quantization": {"scale": 0.05, "zero_point": -3},
        },
        "output": {
            "shape": [1, N_FEATURES],
            "dtype": "int8",
            "quantization": {"scale": 0.04, "zero_point": 2},
        },
        "feature_spec": {
            "sample_rate_hz": 200.0,
            "window": 128,
            "hop": 128,
            "sets": ["stats"],
            "names": [f"f{i}" for i in range(N_FEATURES)],
            "mean": [0.0] * N_FEATURES,
            "std": [1.0] * N_FEATURES,
        },
        "threshold": {"value": 1.5, "policy": "percentile", "percentile": 99.0},
        "score_stats": {
            "mean": 0.4,
            "std": 0.2,
            "p50": 0.35,
            "p95": 0.9,
            "p99": 1.4,
            "max": 2.0,
            "count": 500,
        },
        "ops": ["FULLY_CONNECTED"],
        "flash_bytes": len(FAKE_TFLITE),
        "arena_bytes": 2048,
        "training_data_sha256": "a" * 64,
        "metrics": {"int8_auc": 0.97, "recall": 0.9, "false_alarm_rate": 0.01},
        "lineage": {"config_sha256": "b" * 64, "framework": "tensorflow 2.x"},
    }
    data.update(overrides)
    return data


def self_test(n_cases: int = 2) -> list[dict[str, Any]]:
    inputs = [[i, -i, 3, 127] for i in range(n_cases)]
    return [{"input_int8": x, "expected_int8": run(FAKE_TFLITE, x), "tolerance": 1} for x in inputs]


def files(
    card_data: dict[str, Any] | None = None,
    *,
    tflite: bytes = FAKE_TFLITE,
    report: Any = None,
    cases: Any = None,
    card_bytes: bytes | None = None,
) -> dict[str, tuple[str, bytes, str]]:
    body = card_bytes if card_bytes is not None else json.dumps(card_data or card()).encode()
    parts = {
        "model_tflite": ("model.tflite", tflite, "application/octet-stream"),
        "model_card": ("model_card.json", body, "application/json"),
    }
    if report is not None:
        parts["report"] = ("report.json", json.dumps(report).encode(), "application/json")
    if cases is not None:
        parts["self_test"] = ("self_test.json", json.dumps(cases).encode(), "application/json")
    return parts


def upload(client: TestClient, account: Account, **kwargs: Any) -> httpx.Response:
    response: httpx.Response = client.post("/api/v1/models", files=files(**kwargs), headers=account.headers)
    return response
