"""Signed model packages, manifests and `ota/cmd` payloads for the OTA core's host tests (a real tiny
int8 model, cards the contract accepts, Ed25519 keys), plus the fixtures' build of the core."""

import base64
import ctypes
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from edgefleet.contracts import (
    ModelManifest,
    OtaCommand,
    SelfTestCase,
    build_package,
    encode,
    key_id_for,
    sha256_hex,
    utc_now,
)
from tests.ml.firmware.cbind import CC
from tests.ml.firmware.ota_c import build_ota, sodium_library
from tests.ml.firmware.ota_device import tflm_run
from tests.support.services import in_ci
from tests.support.tiny_tflite import tiny_fc_model

NAMES = [f"{axis}_{stat}" for axis in ("ax", "ay", "az") for stat in ("mean", "std", "ptp")]

DEVICE = "press-7"
URL = "https://fleet.example/api/v1/models/tiny-ae/package"
N = 9  # the stats features of three axes: what dsp computes for the card's spec


def sodium_or_skip() -> str:
    """The linker argument for libsodium; skips (fails under CI) without it or without a C compiler."""
    sodium = sodium_library()
    problem = (
        "no C compiler" if CC is None else "no libsodium (Debian: libsodium23)" if sodium is None else None
    )
    if problem:
        if in_ci():
            pytest.fail(f"CI requires {problem}", pytrace=False)
        pytest.skip(problem)
    assert sodium is not None
    return sodium


def built_ota(out: Path) -> ctypes.CDLL:
    """The OTA core and its dependencies, linked with libsodium; skips (fails under CI) without them."""
    return build_ota(out, sodium_or_skip())


@dataclass
class Signer:
    private: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def raw(self) -> bytes:
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> str:
        return key_id_for(base64.b64encode(self.raw).decode())

    @property
    def trusted(self) -> tuple[str, bytes]:
        return self.key_id, self.raw

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self.private.sign(data)).decode()


def card(version: str = "0.0.2", **changes: Any) -> bytes:
    data: dict[str, Any] = {
        "schema": 1,
        "model_id": "tiny-ae",
        "model_version": version,
        "task": "anomaly_detection",
        "device_kind": "vibration",
        "created": "2026-12-01T10:00:00Z",
        "input": {"shape": [1, N], "dtype": "int8", "quantization": {"scale": 0.05, "zero_point": -3}},
        "output": {"shape": [1, N], "dtype": "int8", "quantization": {"scale": 0.04, "zero_point": 2}},
        "sensor": {
            "axes": ["ax", "ay", "az"],
            "units": ["g", "g", "g"],
            "range_min": [-2.0] * 3,
            "range_max": [2.0] * 3,
        },
        "feature_spec": {
            "sample_rate_hz": 200.0,
            "window": 128,
            "hop": 128,
            "sets": ["stats"],
            "names": NAMES,
            "mean": [0.0] * N,
            "std": [1.0] * N,
        },
        "threshold": {"value": 1.5, "policy": "percentile", "percentile": 99.0},
        "ops": ["FULLY_CONNECTED"],
        "flash_bytes": len(tiny_fc_model(N)),
        "arena_bytes": 2048,
        "min_runtime_version": "0.1.0",
    }
    data.update(changes)
    return json.dumps(data, indent=1).encode()


def unloadable_model() -> bytes:
    """The tiny model with an operator TFLite Micro does not know: a sound flatbuffer (it passes the
    package checks, card included) that fails to load."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(tiny_fc_model(N)), 0))
    model.operatorCodes[0].builtinCode, model.operatorCodes[0].deprecatedBuiltinCode = 9999, 127
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def package(version: str = "0.0.2", tflite: bytes | None = None, **card_changes: Any) -> bytes:
    return build_package(tiny_fc_model(N) if tflite is None else tflite, card(version, **card_changes))


def self_test(n: int = 3, corrupt: bool = False) -> list[SelfTestCase]:
    cases = []
    for i in range(n):
        x = [i * 7 - 10, 3 - i, 50, -128 + i, 0, 1, 2, 127 - i, 9]
        y = tflm_run(tiny_fc_model(N), x)
        if corrupt and i == n - 1:
            y = [v + 5 if v < 100 else v - 5 for v in y]
        cases.append(SelfTestCase(input_int8=x, expected_int8=y, tolerance=1))
    return cases


def manifest(pkg: bytes, signer: Signer, version: str = "0.0.2", **changes: Any) -> ModelManifest:
    fields: dict[str, Any] = {
        "model_id": "tiny-ae",
        "model_version": version,
        "url": URL,
        "sha256": sha256_hex(pkg),
        "size": len(pkg),
        "min_runtime_version": "0.1.0",
        "signature": signer.sign(pkg),
        "key_id": signer.key_id,
        "self_test": self_test(),
    }
    fields.update(changes)
    return ModelManifest(**fields)


def command(
    m: ModelManifest | None, command_id: str = "cmd-1", action: str = "update", **changes: Any
) -> bytes:
    fields: dict[str, Any] = {
        "device_id": DEVICE,
        "command_id": command_id,
        "ts": utc_now(),
        "action": action,
        "rollout_id": "rollout-1",
        "manifest": m,
    }
    fields.update(changes)
    return encode(OtaCommand(**fields))
