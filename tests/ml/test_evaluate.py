import numpy as np
import pytest

from edgefleet.ml import MlError
from edgefleet.ml.config import ThresholdConfig
from edgefleet.ml.evaluate import auc, calibrate_threshold, detection_metrics, score_stats


def test_percentile_threshold_bounds_false_alarms_on_calibration_data() -> None:
    scores = np.random.default_rng(0).exponential(size=1000)
    for p in (95.0, 99.0, 99.9):
        t = calibrate_threshold(scores, ThresholdConfig(policy="percentile", percentile=p))
        assert t.policy == "percentile" and t.percentile == p
        assert np.mean(scores > t.value) <= (100 - p) / 100 + 1e-9
        assert np.mean(scores >= t.value) > (100 - p) / 100 - 0.002  # not needlessly high
    low = calibrate_threshold(scores, ThresholdConfig(percentile=95)).value
    assert low < calibrate_threshold(scores, ThresholdConfig(percentile=99.9)).value


def test_target_false_alarm_rate_threshold() -> None:
    scores = np.arange(1, 101, dtype=float)  # 1..100
    t = calibrate_threshold(scores, ThresholdConfig(policy="target_far", target_false_alarm_rate=0.05))
    assert t.value == 95.0 and t.target_false_alarm_rate == 0.05
    assert np.mean(scores > t.value) == pytest.approx(0.05)


def test_threshold_needs_finite_scores() -> None:
    with pytest.raises(MlError, match="finite scores"):
        calibrate_threshold(np.array([1.0, np.nan]), ThresholdConfig())
    with pytest.raises(MlError):
        calibrate_threshold(np.array([]), ThresholdConfig())


def test_detection_metrics_and_auc() -> None:
    normal = np.array([0.1, 0.2, 0.3, 0.9])
    anomaly = np.array([0.5, 0.8, 1.0, 2.0, 0.25])
    m = detection_metrics(normal, anomaly, threshold=0.4)
    assert m["false_alarm_rate"] == 0.25 and m["recall"] == 0.8 and m["precision"] == 0.8
    assert m["missed"] == 1 and m["false_alarms"] == 1
    assert auc(normal, anomaly) == pytest.approx(16 / 20)  # pairs ranked correctly
    assert auc(np.zeros(3), np.ones(3)) == 1.0
    stats = score_stats(np.arange(101.0))
    assert stats["p50"] == 50 and stats["max"] == 100 and stats["count"] == 101
