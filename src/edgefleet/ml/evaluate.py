"""Scores, threshold calibration and system metrics (false alarms, missed faults)."""

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from edgefleet.ml.config import ThresholdConfig
from edgefleet.ml.errors import MlError


@dataclass(frozen=True)
class Threshold:
    value: float
    policy: str
    percentile: float | None = None
    target_false_alarm_rate: float | None = None


def calibrate_threshold(normal_scores: NDArray[np.floating], config: ThresholdConfig) -> Threshold:
    """From held-out normal scores: a percentile (e.g. 99) or the score at a target false-alarm rate.

    The alarm fires when score > threshold, so on these scores the false-alarm rate is at most
    (100 - percentile)% (target_far: at most the target).
    """
    scores = np.sort(np.asarray(normal_scores, dtype=np.float64))
    if scores.size == 0 or not np.all(np.isfinite(scores)):
        raise MlError("threshold calibration needs finite scores of at least one normal window")
    if config.policy == "percentile":
        value = float(np.percentile(scores, config.percentile, method="higher"))
        return Threshold(value, "percentile", percentile=config.percentile)
    target = config.target_false_alarm_rate
    assert target is not None  # validated by ThresholdConfig
    allowed = int(np.floor(target * scores.size))  # windows allowed above the threshold
    value = float(scores[scores.size - 1 - allowed]) if allowed < scores.size else float(scores[0])
    return Threshold(value, "target_far", target_false_alarm_rate=target)


def auc(normal: NDArray[np.floating], anomaly: NDArray[np.floating]) -> float:
    """Area under the ROC curve (anomaly = positive, higher score = more anomalous)."""
    from sklearn.metrics import roc_auc_score

    y = np.concatenate([np.zeros(len(normal)), np.ones(len(anomaly))])
    return float(roc_auc_score(y, np.concatenate([normal, anomaly])))


def roc(
    normal: NDArray[np.floating], anomaly: NDArray[np.floating]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    from sklearn.metrics import roc_curve

    y = np.concatenate([np.zeros(len(normal)), np.ones(len(anomaly))])
    fpr, tpr, _ = roc_curve(y, np.concatenate([normal, anomaly]))
    return np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)


def detection_metrics(
    normal: NDArray[np.floating], anomaly: NDArray[np.floating], threshold: float
) -> dict[str, float]:
    """Precision, recall and false-alarm rate of `score > threshold` on the test windows."""
    false_alarms = int(np.sum(normal > threshold))
    detected = int(np.sum(anomaly > threshold))
    alarms = false_alarms + detected
    return {
        "precision": detected / alarms if alarms else 0.0,
        "recall": detected / len(anomaly) if len(anomaly) else 0.0,
        "false_alarm_rate": false_alarms / len(normal) if len(normal) else 0.0,
        "false_alarms": float(false_alarms),
        "missed": float(len(anomaly) - detected),
    }


def score_stats(scores: NDArray[np.floating]) -> dict[str, float]:
    s = np.asarray(scores, dtype=np.float64)
    return {
        "mean": float(s.mean()),
        "std": float(s.std()),
        "p50": float(np.percentile(s, 50)),
        "p95": float(np.percentile(s, 95)),
        "p99": float(np.percentile(s, 99)),
        "max": float(s.max()),
        "count": float(s.size),
    }
