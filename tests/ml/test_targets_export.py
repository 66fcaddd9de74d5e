import re

import pytest

from edgefleet.ml import MlError
from edgefleet.ml.export import c_array
from edgefleet.ml.targets import TARGETS, assess, get_target


def test_every_issue_target_is_known() -> None:
    assert {"esp32-s3", "esp32", "cortex-m4f", "nrf52840"} <= set(TARGETS)
    with pytest.raises(MlError, match="unknown MCU target 'avr'"):
        get_target("avr")


def test_a_model_that_does_not_fit_says_why() -> None:
    small = assess(get_target("nrf52840"), flash_bytes=5000, arena_bytes=3000, macs=500, ops=4)
    assert small["fits"] is True and small["why_not"] is None
    big = assess(get_target("nrf52840"), flash_bytes=500_000, arena_bytes=300_000, macs=500, ops=4)
    assert big["fits"] is False
    assert "arena 300000 B exceeds" in str(big["why_not"]) and "flash budget" in str(big["why_not"])


def test_latency_scales_with_macs_and_clock() -> None:
    m4 = get_target("cortex-m4f")
    base = assess(m4, 1, 1, macs=0, ops=1)["est_latency_ms"]
    more = assess(m4, 1, 1, macs=168_000, ops=1)["est_latency_ms"]
    assert more == pytest.approx(float(base) + 1.0)  # 168k MACs at 1 cycle/MAC, 168 MHz
    slow = assess(get_target("nrf52840"), 1, 1, macs=168_000, ops=1)["est_latency_ms"]
    assert float(slow) > float(more)


def test_c_array_is_aligned_and_has_a_length_constant() -> None:
    data = bytes(range(30))
    header, source = c_array(data)
    assert "constexpr std::size_t g_model_data_len = 30;" in header
    assert "#ifndef EDGEFLEET_MODEL_DATA_H_" in header
    assert "alignas(16) const unsigned char g_model_data[g_model_data_len]" in source
    values = [int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", source)]
    assert bytes(values) == data
