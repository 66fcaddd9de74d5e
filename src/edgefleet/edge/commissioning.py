"""Commissioning: learn this machine's baseline in this mount, then re-normalize and recalibrate.

During commissioning the device scores nothing and reports mode `commissioning`. After N clean
windows it sets its input standardization to the field per-feature mean/std and its threshold to
the quantile of the field scores that gives the model card's target false-alarm rate.
"""

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)


class CommissioningConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    windows: int = Field(default=0, ge=0, description="clean windows to learn from; 0 = use the card as is")
    target_far: float | None = Field(
        default=None, gt=0, lt=1, description="per-window false-alarm rate; default: the model card's"
    )
    margin: float = Field(default=1.0, gt=0, description="multiply the calibrated threshold by this")
    confidence: float = Field(
        default=0.9,
        ge=0.5,
        lt=1,
        description="pick the quantile so that the true false-alarm rate is at or below target with this "
        "confidence (a few hundred windows estimate a 1% tail only roughly)",
    )
    min_std_fraction: float = Field(
        default=1.0, gt=0, description="floor each field std at this fraction of the card's std"
    )


@dataclass(frozen=True)
class Baseline:
    """The normalization and threshold a device scores with."""

    mean: np.ndarray
    std: np.ndarray
    threshold: float
    commissioned: bool
    score_p50: float | None = None
    score_p99: float | None = None


ScoreFn = Callable[[np.ndarray, Baseline], np.ndarray]
"""Scores a batch of raw features (B, F) under a baseline (B,)."""


@dataclass
class Commissioner:
    """Collects raw feature vectors until it has enough, then computes the field baseline."""

    config: CommissioningConfig
    card_baseline: Baseline
    card_target_far: float
    _collected: list[np.ndarray] = field(default_factory=list)
    active: bool = field(init=False)

    def __post_init__(self) -> None:
        self.active = self.config.windows > 0

    @property
    def collected(self) -> int:
        return sum(len(c) for c in self._collected)

    @property
    def progress(self) -> float:
        return 1.0 if not self.config.windows else min(1.0, self.collected / self.config.windows)

    def restart(self, windows: int | None = None) -> None:
        """Start again (the `recommission` command), optionally with another window count."""
        if windows is not None:
            self.config = self.config.model_copy(update={"windows": windows})
        self._collected.clear()
        self.active = self.config.windows > 0

    def add(self, features: np.ndarray, score: ScoreFn) -> Baseline | None:
        """Add clean raw features (B, F); returns the new baseline once enough were seen."""
        if not self.active:
            return None
        self._collected.append(
            np.asarray(features, dtype=np.float64).reshape(-1, self.card_baseline.mean.shape[0])
        )
        if self.collected < self.config.windows:
            return None
        data = np.concatenate(self._collected)[: self.config.windows]
        self._collected.clear()
        self.active = False
        return self.fit(data, score)

    def fit(self, data: np.ndarray, score: ScoreFn) -> Baseline:
        mean = data.mean(axis=0)
        std = np.maximum(data.std(axis=0), self.config.min_std_fraction * self.card_baseline.std)
        provisional = Baseline(mean, std, self.card_baseline.threshold, commissioned=True)
        scores = score(data, provisional)
        far = self.config.target_far or self.card_target_far
        # normal approximation of the binomial: the sample quantile's level plus z standard errors
        z = NormalDist().inv_cdf(self.config.confidence)
        level = min(1.0, 1.0 - far + z * math.sqrt(far * (1.0 - far) / len(scores)))
        threshold = float(np.quantile(scores, level)) * self.config.margin
        log.info(
            "commissioned on %d windows: threshold %.4g (card %.4g) for a %.2g%% false-alarm rate",
            len(data),
            threshold,
            self.card_baseline.threshold,
            far * 100,
        )
        return Baseline(
            mean,
            std,
            threshold,
            commissioned=True,
            score_p50=float(np.quantile(scores, 0.5)),
            score_p99=float(np.quantile(scores, 0.99)),
        )
