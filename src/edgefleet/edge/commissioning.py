"""Commissioning: learn this machine's baseline in this mount, then re-normalize and recalibrate.

During commissioning the device scores nothing and reports mode `commissioning`. After N clean
windows it sets its input standardization to the field per-feature mean/std, and its threshold to
an out-of-sample upper confidence bound on the (1 - target) quantile of the field scores
(`edge.calibration`): with probability `confidence` the true per-window false-alarm rate on this
machine's normal state is at or below the model card's target.

Then it checks its own quality (`assess`): how much wider the field spread is than the card's,
and whether the card's known fault windows, moved onto the field baseline, still cross the new
threshold. A device that would no longer see the faults it was trained on reports `blind`.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgefleet.contracts import CommissioningReport, CommissioningStatus, FaultProbe
from edgefleet.edge.calibration import MIN_WINDOWS, crossfit_scores, upper_quantile_bound

log = logging.getLogger(__name__)


class CommissioningConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    windows: int = Field(default=0, ge=0, description="clean windows to learn from; 0 = use the card as is")
    target_far: float | None = Field(
        default=None, gt=0, lt=1, description="per-window false-alarm rate; default: the model card's"
    )
    margin: float = Field(
        default=1.0,
        gt=0,
        description="multiply the calibrated threshold by this (1.0: the bound as computed)",
    )
    confidence: float = Field(
        default=0.9,
        ge=0.5,
        lt=1,
        description="probability that the true per-window false-alarm rate is at or below the target",
    )
    folds: int = Field(default=5, ge=2, le=20, description="cross-fitting folds (contiguous in time)")
    min_std_fraction: float = Field(
        default=1.0, gt=0, description="floor each field std at this fraction of the card's std"
    )
    min_fault_visibility: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="`blind` when the field baseline detects less than this share of the card's known "
        "faults that the card's own baseline detects",
    )
    max_spread_ratio: float = Field(
        default=4.0, gt=1, description="`noisy_baseline` when the median field/card std ratio exceeds this"
    )

    @field_validator("windows")
    @classmethod
    def _enough_windows(cls, windows: int) -> int:
        if 0 < windows < MIN_WINDOWS:
            raise ValueError(f"commissioning needs 0 (off) or at least {MIN_WINDOWS} windows, got {windows}")
        return windows


@dataclass(frozen=True)
class Baseline:
    """The normalization and threshold a device scores with."""

    mean: np.ndarray
    std: np.ndarray
    threshold: float
    commissioned: bool
    score_p50: float | None = None
    score_p99: float | None = None
    report: CommissioningReport | None = None


ScoreFn = Callable[[np.ndarray, Baseline], np.ndarray]
"""Scores a batch of raw features (B, F) under a baseline (B,)."""


@dataclass
class Commissioner:
    """Collects raw feature vectors until it has enough, then computes the field baseline."""

    config: CommissioningConfig
    card_baseline: Baseline
    card_target_far: float
    feature_names: list[str] = field(default_factory=list)
    fault_probes: list[FaultProbe] = field(default_factory=list)
    _collected: list[np.ndarray] = field(default_factory=list)
    active: bool = field(init=False)

    def __post_init__(self) -> None:
        self.active = self.config.windows > 0

    @property
    def collected(self) -> int:
        return sum(len(c) for c in self._collected)

    @property
    def needed(self) -> int:
        """Windows still to collect before the baseline is computed."""
        return max(0, self.config.windows - self.collected) if self.active else 0

    @property
    def progress(self) -> float:
        return 1.0 if not self.config.windows else min(1.0, self.collected / self.config.windows)

    def restart(self, windows: int | None = None) -> None:
        """Start again (the `recommission` command), optionally with another window count
        (a pydantic ValidationError, and nothing changed, if the count is not allowed)."""
        if windows is not None:
            self.config = CommissioningConfig.model_validate({**self.config.model_dump(), "windows": windows})
        self._collected.clear()
        self.active = self.config.windows > 0

    def add(self, features: np.ndarray, score: ScoreFn) -> Baseline | None:
        """Add clean raw features (B, F); returns the new baseline once enough were seen.

        Windows beyond the ones still needed are not taken: the caller scores them with the new
        baseline (`needed` says how many to pass to stay window-exact)."""
        if not self.active:
            return None
        rows = np.asarray(features, dtype=np.float64).reshape(-1, self.card_baseline.mean.shape[0])
        self._collected.append(rows[: self.needed])
        if self.collected < self.config.windows:
            return None
        data = np.concatenate(self._collected)
        self._collected.clear()
        self.active = False
        return self.fit(data, score)

    def _normalization(self, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        floor = self.config.min_std_fraction * self.card_baseline.std
        return data.mean(axis=0), np.maximum(data.std(axis=0), floor)

    def fit(self, data: np.ndarray, score: ScoreFn) -> Baseline:
        if len(data) < MIN_WINDOWS:
            raise ValueError(f"commissioning needs at least {MIN_WINDOWS} windows, got {len(data)}")
        mean, std = self._normalization(data)
        card = self.card_baseline

        def fold_score(rows: np.ndarray, m: np.ndarray, s: np.ndarray) -> np.ndarray:
            return score(rows, Baseline(m, s, card.threshold, commissioned=True))

        oos = crossfit_scores(data, self.config.folds, self._normalization, fold_score)
        far = self.config.target_far or self.card_target_far
        estimate = upper_quantile_bound(oos, far, self.config.confidence)
        threshold = estimate.value * self.config.margin
        provisional = Baseline(mean, std, threshold, commissioned=True)
        report = self.assess(data, provisional, score, estimate.method, far)
        level = logging.WARNING if report.status != "ok" else logging.INFO
        log.log(level, "commissioned on %d windows: %s", len(data), report.message)
        return Baseline(
            mean,
            std,
            threshold,
            commissioned=True,
            score_p50=float(np.quantile(oos, 0.5)),
            score_p99=float(np.quantile(oos, 0.99)),
            report=report,
        )

    def assess(
        self, data: np.ndarray, field_baseline: Baseline, score: ScoreFn, method: str, far: float
    ) -> CommissioningReport:
        """Compare the field baseline with the card's: spread per feature, and the known faults."""
        card = self.card_baseline
        ratio = data.std(axis=0) / np.maximum(card.std, 1e-12)
        widest = int(np.argmax(ratio))
        visibility = card_visibility = None
        if self.fault_probes:
            probes = np.asarray([p.features for p in self.fault_probes], dtype=np.float64)
            card_visibility = float(np.mean(score(probes, card) > card.threshold))
            # the fault's offset from the card's normal, moved onto this machine's normal
            moved = field_baseline.mean + (probes - card.mean)
            visibility = float(np.mean(score(moved, field_baseline) > field_baseline.threshold))
        median_ratio = float(np.median(ratio))
        status: CommissioningStatus = "ok"
        if (
            visibility is not None
            and card_visibility is not None
            and card_visibility > 0
            and visibility < self.config.min_fault_visibility * card_visibility
        ):
            status = "blind"
        elif median_ratio > self.config.max_spread_ratio:
            status = "noisy_baseline"
        name = self.feature_names[widest] if widest < len(self.feature_names) else None
        message = _message(status, ratio, name, (visibility, card_visibility))
        return CommissioningReport(
            status=status,
            windows=len(data),
            threshold=field_baseline.threshold,
            card_threshold=card.threshold,
            target_far=far,
            confidence=self.config.confidence,
            method=method,
            spread_ratio_median=round(median_ratio, 4),
            spread_ratio_max=round(float(ratio[widest]), 4),
            widest_feature=name,
            fault_visibility=visibility,
            card_fault_visibility=card_visibility,
            message=message[:256],
        )


def _message(
    status: CommissioningStatus,
    ratio: np.ndarray,
    widest: str | None,
    visibility: tuple[float | None, float | None],
) -> str:
    spread = (
        f"field spread {float(np.median(ratio)):.1f}x the training data's "
        f"(widest {widest or '?'} {float(ratio.max()):.1f}x)"
    )
    field_seen, card_seen = visibility
    seen = (
        f"; {field_seen:.0%} of the known faults detectable (training baseline: {card_seen:.0%})"
        if field_seen is not None and card_seen is not None
        else ""
    )
    if status == "blind":
        return f"blind: this baseline hides the trained faults; {spread}{seen}. Re-commission or retrain."
    if status == "noisy_baseline":
        return f"noisy baseline: {spread}{seen}. Faults of the trained size may go unseen."
    return f"ok: {spread}{seen}"
