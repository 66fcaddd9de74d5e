import numpy as np
import pytest
from pydantic import ValidationError

from edgefleet.edge.decision import (
    DebounceConfig,
    Debouncer,
    IsoRuleConfig,
    SimulatedGpio,
    rms_velocity_mm_s,
    severity_zone,
)


def run(debouncer: Debouncer, flags: str) -> list[bool | None]:
    out = []
    for ch in flags:
        change = debouncer.update_flag(ch == "1")
        out.append(None if change is None else change.active)
    return out


def test_one_noisy_window_is_not_an_alarm() -> None:
    d = Debouncer(DebounceConfig(k=3, n=5, m=3))
    assert run(d, "0100010000") == [None] * 10
    assert not d.active


def test_k_of_n_raises_and_m_normal_clear() -> None:
    d = Debouncer(DebounceConfig(k=3, n=5, m=3))
    changes = run(d, "1011" + "001" + "000")
    assert changes.index(True) == 3  # the third anomalous window among five
    assert changes[-1] is False and changes.count(False) == 1  # needs three normal in a row
    assert not d.active


def test_hysteresis_keeps_an_alarm_up_just_below_threshold() -> None:
    d = Debouncer(DebounceConfig(k=1, n=1, m=2, hysteresis=0.8))
    assert d.update(1.2, 1.0) is not None and d.active
    for _ in range(5):
        assert d.update(0.9, 1.0) is None  # between 0.8 and 1.0: still anomalous while raised
    assert d.update(0.7, 1.0) is None
    change = d.update(0.7, 1.0)
    assert change is not None and not change.active


def test_k_larger_than_n_is_refused() -> None:
    with pytest.raises(ValidationError):
        DebounceConfig(k=4, n=3)


def test_rms_velocity_of_a_pure_sine_matches_the_analytic_value() -> None:
    fs, f, amp_g = 200.0, 25.0, 0.1
    t = np.arange(128 * 4) / fs
    a = amp_g * np.sin(2 * np.pi * f * t)
    windows = np.zeros((1, len(t), 6))
    windows[0, :, 0] = a
    windows[0, :, 2] = 1.0  # gravity is removed with the mean
    cfg = IsoRuleConfig(band_hz=(10.0, 100.0))
    expected = amp_g * 9.80665 / (2 * np.pi * f) / np.sqrt(2) * 1000
    got = float(rms_velocity_mm_s(windows, fs, cfg)[0])
    assert got == pytest.approx(expected, rel=0.05)


def test_zones() -> None:
    limits = (1.8, 4.5, 11.2)
    assert [severity_zone(v, limits) for v in (0.5, 2.0, 5.0, 20.0)] == ["A", "B", "C", "D"]


def test_gpio_records_edges_only() -> None:
    gpio = SimulatedGpio(pin=7)
    for level in (False, True, True, False):
        gpio.set(level, at=1.0)
    assert gpio.edges == [(1.0, True), (1.0, False)]
