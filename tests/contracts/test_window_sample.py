"""`WindowSample` (channel `sample`): shape checks, the size cap, and the int16 packing round trip."""

import base64
import json
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from edgefleet.contracts import (
    MAX_PAYLOAD_BYTES,
    MAX_WINDOW_SAMPLE_B64_CHARS,
    Channel,
    MessageValidationError,
    WindowSample,
    decode,
    encode,
)
from edgefleet.dsp.window_codec import pack_base64, unpack_base64
from tests.contracts.samples import DEVICE, TS


def _fields(n: int = 128, n_axes: int = 6, **overrides: Any) -> dict[str, Any]:
    """A valid packed window of `n` samples x `n_axes`, then `overrides` of its fields."""
    rng = np.random.default_rng(0)
    scale, data = pack_base64(rng.normal(0, 0.5, (n, n_axes)))
    fields: dict[str, Any] = {
        "device_id": DEVICE,
        "seq": 3,
        "ts": TS,
        "window": 77,
        "sample_rate_hz": 200.0,
        "axes": [f"a{i}" for i in range(n_axes)],
        "length": n,
        "scale": scale,
        "data": data,
    }
    fields.update(overrides)
    return fields


def test_a_seed_window_is_small_and_round_trips() -> None:
    sample = WindowSample(**_fields())
    payload = encode(sample)
    assert len(payload) < 3000  # 128 x 6 int16 = 1536 bytes, 2048 in base64, plus the envelope
    assert decode(Channel.SAMPLE, payload) == sample


def test_packing_is_within_one_step_of_each_axis_peak() -> None:
    rng = np.random.default_rng(1)
    window = rng.normal(0, 1, (1024, 3)) * np.array([0.01, 1.0, 200.0])  # very different axis ranges
    window[:, 1] += 1.0  # gravity on one axis
    scale, data = pack_base64(window)
    back = unpack_base64(data, scale, 1024)
    step = np.abs(window).max(axis=0) / 32767
    assert np.all(np.abs(back - window) <= step / 2 + 1e-12)


def test_an_all_zero_axis_packs_with_a_positive_scale() -> None:
    scale, data = pack_base64(np.zeros((8, 2)))
    sample = WindowSample(**_fields(8, 2, scale=scale, data=data))
    assert all(s > 0 for s in sample.scale)
    assert not unpack_base64(sample.data, sample.scale, 8).any()


def test_non_finite_windows_are_not_packed() -> None:
    window = np.zeros((8, 2))
    window[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pack_base64(window)


def test_bad_base64_is_refused() -> None:
    with pytest.raises(ValidationError, match="not valid base64"):
        WindowSample(**_fields(data="not base64!!"))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"length": 127}, "holds 1536 bytes; 127 samples x 6 axes of int16 need 1524"),
        ({"axes": ["a0", "a1"]}, "`scale` has 6 entries for 2 axes"),
        ({"scale": [1.0] * 5}, "`scale` has 5 entries for 6 axes"),
        ({"scale": [0.0] * 6}, "greater than 0"),
        ({"encoding": "float32"}, "int16le"),
        ({"length": 1}, "greater than or equal to 2"),
    ],
)
def test_shape_mismatches_are_refused(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        WindowSample(**_fields(**overrides))


def test_the_largest_window_fits_the_payload_limit_and_a_larger_one_is_refused() -> None:
    values = MAX_WINDOW_SAMPLE_B64_CHARS * 3 // 4 // 2  # int16 values that fit the data cap
    axes = 6
    length = values // axes
    sample = WindowSample(**_fields(length, axes))
    assert len(sample.data) <= MAX_WINDOW_SAMPLE_B64_CHARS
    assert len(encode(sample)) <= MAX_PAYLOAD_BYTES
    with pytest.raises(ValidationError, match="at most"):
        WindowSample(**_fields(length + 8, axes))


def test_a_decoded_payload_with_a_shape_mismatch_is_a_contract_error() -> None:
    payload = json.loads(encode(WindowSample(**_fields())))
    payload["data"] = base64.b64encode(bytes(100)).decode()
    with pytest.raises(MessageValidationError, match="data"):
        decode(Channel.SAMPLE, json.dumps(payload))
