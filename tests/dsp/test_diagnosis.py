"""Fault hints from the spectrum (dsp.diagnosis) and the debounce in window lengths (dsp.windows)."""

import numpy as np
import pytest

from edgefleet import dsp
from edgefleet.dsp.diagnosis import estimate_shaft_hz, fault_hint, power_spectrum

FAULT_HINTS = {
    "imbalance": "imbalance",
    "misalignment": "misalignment",
    "looseness": "looseness",
    "bearing_outer": "bearing",
    "bearing_inner": "bearing",
}


def _windows(n: int, seed: int, speed: float, fault: str = "normal", severity: float = 0.5) -> np.ndarray:
    synth = dsp.VibrationSynth(seed=seed)
    synth.schedule_speed(0.0, speed)
    if fault != "normal":
        synth.set_fault(fault, severity)
    return dsp.frame(synth.read(n * 128).samples.astype(np.float64), 128, 128)[:, :, :3]


@pytest.mark.parametrize("speed", [1.0, 1.25])
def test_every_simulated_fault_gets_its_hint(speed: float) -> None:
    freqs, normal = power_spectrum(_windows(32, 1, speed), 200.0)
    baseline = normal.mean(axis=0)
    shaft = estimate_shaft_hz(freqs, baseline)
    assert shaft == pytest.approx(15.0 * speed, rel=0.03)
    for fault, hint in FAULT_HINTS.items():
        _, power = power_spectrum(_windows(20, 5, speed, fault), 200.0)
        hints = [fault_hint(freqs, p, baseline, shaft).hint for p in power]
        assert hints.count(hint) >= 18, (fault, hints)


def test_no_excess_energy_or_no_shaft_gives_unknown() -> None:
    freqs, normal = power_spectrum(_windows(8, 2, 1.0), 200.0)
    baseline = normal.mean(axis=0)
    assert fault_hint(freqs, baseline * 0.5, baseline, 15.0).hint == "unknown"  # quieter than normal
    assert fault_hint(freqs, baseline * 10, baseline, None).hint == "unknown"
    flat = np.ones_like(baseline)
    assert estimate_shaft_hz(freqs, flat) is None  # no peak, no guess


@pytest.mark.parametrize(
    ("window", "hop", "expected"),
    [(128, 128, (3, 5, 5)), (128, 64, (5, 10, 10)), (64, 16, (9, 20, 20)), (100, 30, (9, 20, 20))],
)
def test_debounce_counts_window_lengths(window: int, hop: int, expected: tuple[int, int, int]) -> None:
    k, n, m = dsp.debounce_in_hops(3, 5, 5, window, hop)
    assert (k, n, m) == expected
    r = dsp.overlap_factor(window, hop)
    assert r < k or r == 1  # one short knock (seen by r windows) cannot raise a 3-of-5 alarm
