"""Field figures shared by `field-shift` and `field-real` (not a benchmark: leading underscore).

- The K-means baseline of the model factory (`ml.baseline.fit_kmeans`, distance to the nearest
  centroid) fitted on the same commissioning windows the device learned from, standardized by their
  own mean and std, and judged *at equal false-alarm rate*: its threshold is set on the measured
  normal windows so that it flags no more of them than the device did (an oracle threshold: it
  compares how well the two separate normal from faults, not how well each sets a threshold).
- AUC of the device's scores and of K-means' distances (faults = positive).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

STD_FLOOR = 1e-3  # as the model factory's standardization


def auc(normal: np.ndarray, anomaly: np.ndarray) -> float | None:
    """Area under the ROC curve; None when either side is empty."""
    if len(normal) == 0 or len(anomaly) == 0:
        return None
    from edgefleet.ml.evaluate import auc as roc_auc

    return roc_auc(np.asarray(normal, dtype=np.float64), np.asarray(anomaly, dtype=np.float64))


def threshold_at_far(normal_scores: np.ndarray, far: float) -> float:
    """The threshold that flags (score > threshold) at most `far` of `normal_scores`."""
    scores = np.sort(np.asarray(normal_scores, dtype=np.float64))
    if scores.size == 0:
        return float("inf")
    allowed = int(np.floor(far * scores.size + 1e-9))
    return float(scores[scores.size - 1 - allowed]) if allowed < scores.size else float("-inf")


@dataclass(frozen=True)
class KMeansResult:
    threshold: float
    far_window: float
    recall_by_fault: dict[str, float]
    auc_by_fault: dict[str, float | None]
    normal_scores: np.ndarray
    fault_scores: dict[str, np.ndarray]


def kmeans_at_equal_far(
    commission: np.ndarray,
    normal: np.ndarray,
    faults: Mapping[str, np.ndarray],
    far: float,
    *,
    clusters: int,
    seed: int = 0,
    normal_scored: np.ndarray | None = None,
    faults_scored: Mapping[str, np.ndarray] | None = None,
) -> KMeansResult:
    """Raw feature rows (N, F) in, K-means figures out.

    `normal_scored` / `faults_scored` (boolean masks) mark the windows the device scored; the
    others (rejected by its input guards) count as not flagged, as they do for the device.
    """
    from edgefleet.ml.baseline import fit_kmeans

    mean = commission.mean(axis=0)
    std = np.maximum(commission.std(axis=0), STD_FLOOR)

    def z(x: np.ndarray) -> np.ndarray:
        return np.asarray((x - mean) / std, dtype=np.float32)

    model = fit_kmeans(z(commission), clusters, seed)

    def scores(x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        s = model.score(z(x)) if len(x) else np.zeros(0)
        return s if mask is None else np.where(mask, s, -np.inf)

    s_normal = scores(normal, normal_scored)
    s_faults = {name: scores(x, (faults_scored or {}).get(name)) for name, x in faults.items()}
    threshold = threshold_at_far(s_normal, far)  # unscored windows (-inf) are never above it
    finite_normal = s_normal[np.isfinite(s_normal)]
    return KMeansResult(
        threshold=threshold,
        far_window=float(np.mean(s_normal > threshold)) if len(s_normal) else 0.0,
        recall_by_fault={name: float(np.mean(s > threshold)) for name, s in s_faults.items()},
        auc_by_fault={name: auc(finite_normal, s[np.isfinite(s)]) for name, s in s_faults.items()},
        normal_scores=s_normal,
        fault_scores=s_faults,
    )


def mean_or_none(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(float(np.mean(kept)), 4) if kept else None


def min_or_none(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return round(float(np.min(kept)), 4) if kept else None
