"""DeviceCore: guards -> features -> int8 inference -> decisions, on the synthetic machine."""

from pathlib import Path

import numpy as np
import pytest

from edgefleet import dsp
from edgefleet.contracts import Event, utc_now
from edgefleet.edge.commissioning import CommissioningConfig
from edgefleet.edge.config import DeviceConfig
from edgefleet.edge.model import ModelBundle, load_model_dir
from edgefleet.edge.pipeline import DeviceCore
from tests.edge.conftest import synth_windows


@pytest.fixture(scope="module")
def bundle(model_dir: Path) -> ModelBundle:
    return load_model_dir(model_dir)


def fault_windows(fault: str, n: int, seed: int = 12, severity: float = 1.0) -> np.ndarray:
    synth = dsp.VibrationSynth(seed=seed)
    synth.set_fault(fault, severity)
    return dsp.frame(synth.read(n * 128).samples.astype(np.float64), 128, 128)


def test_scores_follow_the_dsp_scoring_contract(bundle: ModelBundle) -> None:
    """The card's score_stats were computed the same way: the training windows' p99 is the threshold."""
    core = DeviceCore(DeviceConfig(device_id="d"), bundle)
    results = core.process(synth_windows(300, seed=11))
    scores = np.array([r.score for r in results])
    assert bundle.card.score_stats is not None and bundle.card.threshold is not None
    assert np.median(scores) == pytest.approx(bundle.card.score_stats.p50, rel=0.35)
    assert (scores > bundle.card.threshold.value).mean() < 0.05


@pytest.mark.parametrize("fault", [f for f in dsp.FAULTS if f != "normal"])
def test_every_fault_raises_an_anomaly_event_with_key_features(bundle: ModelBundle, fault: str) -> None:
    core = DeviceCore(DeviceConfig(device_id="d"), bundle)
    core.process(synth_windows(20, seed=12))
    results = core.process(fault_windows(fault, 40))
    assert np.mean([r.anomaly for r in results]) > 0.95
    raised = [e for r in results for e in r.events if e.kind == "anomaly" and e.active]
    assert len(raised) == 1
    event = raised[0]
    assert event.score is not None and event.threshold is not None and event.score > event.threshold
    assert 0 < len(event.features) <= 8
    assert core.gpio.level is True
    # the draft is a valid wire event
    Event(
        device_id="d",
        seq=1,
        ts=utc_now(),
        kind=event.kind,
        score=event.score,
        threshold=event.threshold,
        features=event.features,
        window=event.window,
    )


def test_alarm_clears_after_m_normal_windows_and_gpio_drops(bundle: ModelBundle) -> None:
    cfg = DeviceConfig(device_id="d", commissioning=CommissioningConfig(windows=100))
    core = DeviceCore(cfg, bundle)
    core.process(synth_windows(100, seed=12))  # commission on this machine first
    assert core.mode == "running"
    core.process(fault_windows("imbalance", 10))
    assert core.debouncer.active
    results = core.process(synth_windows(100, seed=12)[-40:])
    cleared = [e for r in results for e in r.events if e.kind == "anomaly" and not e.active]
    assert len(cleared) == 1
    assert not core.gpio.level or core.rule_debouncer.active


def test_sensor_garbage_is_rejected_counted_and_raises_sensor_fault(bundle: ModelBundle) -> None:
    core = DeviceCore(DeviceConfig(device_id="d"), bundle)
    rng = np.random.default_rng(0)
    garbage = rng.choice([np.nan, np.inf, 1e9, 0.0], size=(10, 128, 6))
    results = core.process(garbage)
    assert all(r.state == "rejected" and r.score is None for r in results)
    faults = [e for r in results for e in r.events if e.kind == "sensor_fault" and e.active]
    assert {e.reason for e in faults} >= {"nonfinite", "out_of_range"}
    assert core.rejects.total["nonfinite"] == 10
    clean = core.process(synth_windows(12, seed=12))
    cleared = [e for r in clean for e in r.events if e.kind == "sensor_fault" and not e.active]
    assert {e.reason for e in cleared} == {e.reason for e in faults}


def test_one_bad_window_is_not_a_sensor_fault(bundle: ModelBundle) -> None:
    core = DeviceCore(DeviceConfig(device_id="d"), bundle)
    windows = synth_windows(10, seed=12)
    windows[4, 7, 1] = np.nan
    results = core.process(windows)
    assert [r.state == "rejected" for r in results].count(True) == 1
    assert not [e for r in results for e in r.events if e.kind == "sensor_fault"]


def test_commissioning_mode_scores_nothing_then_recalibrates(bundle: ModelBundle) -> None:
    core = DeviceCore(DeviceConfig(device_id="d", commissioning=CommissioningConfig(windows=50)), bundle)
    first = core.process(synth_windows(30, seed=5))
    assert core.mode == "commissioning" and {r.state for r in first} == {"commissioning"}
    core.process(synth_windows(60, seed=5)[30:])
    assert (core.mode, core.baseline.commissioned) == ("running", True)
    assert core.threshold != bundle.card.threshold.value if bundle.card.threshold else False
    core.recommission(20)
    assert core.mode == "commissioning"


def test_without_a_model_the_rule_still_raises(bundle: ModelBundle) -> None:
    core = DeviceCore(DeviceConfig(device_id="d"), None)
    assert core.mode == "degraded"
    results = core.process(fault_windows("imbalance", 10, severity=2.0))
    rules = [e for r in results for e in r.events if e.kind == "rule" and e.active]
    assert len(rules) == 1 and rules[0].reason is not None and rules[0].reason.startswith("iso10816_zone_")
    assert all(r.state == "degraded" and r.velocity_mm_s is not None for r in results)
    assert core.gpio.level
