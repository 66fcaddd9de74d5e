"""Input guards: each field failure is caught, counted by reason, and clean data passes."""

import numpy as np
import pytest

from edgefleet.contracts import SensorSpec
from edgefleet.edge.guards import GuardConfig, InputGuard, RejectCounter
from tests.edge.conftest import synth_windows
from tests.edge.modelkit import mpu6050_sensor


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return synth_windows(8, seed=2)


@pytest.fixture
def guard() -> InputGuard:
    return InputGuard.for_sensor(mpu6050_sensor(), 200.0)


def test_clean_synthetic_windows_pass(guard: InputGuard, clean: np.ndarray) -> None:
    result = guard.check(clean, np.tile(np.arange(128) / 200.0, (len(clean), 1)))
    assert result.ok.all()
    assert result.reasons == {}


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda w: w.__setitem__((10, 0), np.nan), "nonfinite"),
        (lambda w: w.__setitem__((10, 3), np.inf), "nonfinite"),
        (lambda w: w.__setitem__((10, 1), 7.5), "out_of_range"),
        (lambda w: w.__setitem__((slice(20, 30), 2), 2.0), "saturated"),
        (lambda w: w.__setitem__((slice(None), 4), 1.25), "stuck"),
        (lambda w: w.__setitem__(slice(40, 50), 0.0), "stuck"),  # an I2C dropout: every axis reads 0
    ],
)
def test_each_fault_is_caught_with_its_reason(
    guard: InputGuard, clean: np.ndarray, damage: object, reason: str
) -> None:
    windows = clean.copy()
    assert callable(damage)
    damage(windows[3])
    result = guard.check(windows)
    assert result.ok.tolist() == [i != 3 for i in range(len(windows))]
    assert result.reasons_of(3) == [reason] or reason in result.reasons_of(3)
    assert reason in result.reasons


def test_a_single_clipped_sample_is_not_saturation(guard: InputGuard, clean: np.ndarray) -> None:
    windows = clean.copy()
    windows[0, 5, 0] = 2.0
    assert guard.check(windows).ok.all()


def test_gaps_and_malformed_readings_come_from_timestamps(guard: InputGuard, clean: np.ndarray) -> None:
    t = np.tile(np.arange(128) / 200.0, (len(clean), 1))
    t[1, 64:] += 0.5  # the stream stalled for half a second
    t[2, 10] = np.nan  # a line that did not parse
    t[4, 20] = t[4, 19]  # a repeated timestamp
    result = guard.check(clean, t)
    assert result.reasons_of(1) == ["gap"]
    assert result.reasons_of(2) == ["malformed"]
    assert result.reasons_of(4) == ["gap"]
    assert result.ok.sum() == len(clean) - 3


def test_wrong_axis_count_is_an_error(guard: InputGuard) -> None:
    with pytest.raises(ValueError, match="expected windows shaped"):
        guard.check(np.zeros((1, 128, 3)))


def test_random_garbage_never_crashes_and_is_rejected() -> None:
    rng = np.random.default_rng(0)
    guard = InputGuard.for_sensor(
        SensorSpec(axes=["a"], units=["g"], range_min=[-1.0], range_max=[1.0]),
        100.0,
        GuardConfig(saturation_run=3),
    )
    garbage = rng.choice([np.nan, np.inf, -np.inf, 1e30, -5.0, 0.0, 1.0], size=(200, 64, 1))
    result = guard.check(garbage)
    assert not result.ok.any()


def test_reject_counter_keeps_totals_and_intervals() -> None:
    counter = RejectCounter()
    counter.add("gap")
    counter.add("gap", 2)
    counter.add("stuck", 0)
    assert counter.take_interval() == {"gap": 3}
    counter.add("stuck")
    assert counter.take_interval() == {"stuck": 1}
    assert counter.total == {"gap": 3, "stuck": 1}
