"""Input guards: reject windows a real sensor in the field should never have scored.

Each check is vectorized over a batch of windows shaped (B, W, A). A window with any problem is
not scored; problems are counted by reason, and a persistent problem becomes a `sensor_fault`.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgefleet.contracts import SensorSpec

REASONS: Final = ("nonfinite", "out_of_range", "saturated", "stuck", "gap", "malformed")


class GuardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    range_tolerance: float = Field(
        default=0.01, ge=0, description="fraction of the span allowed beyond range"
    )
    saturation_fraction: float = Field(
        default=0.995, gt=0, le=1, description="|x| >= this * limit is clipped"
    )
    saturation_run: int = Field(
        default=4, ge=2, description="consecutive clipped samples that reject a window"
    )
    stuck_ptp: float = Field(default=0.0, ge=0, description="an axis whose peak-to-peak is <= this is stuck")
    frozen_run: int = Field(
        default=4, ge=2, description="this many identical consecutive samples (all axes) is a stuck read"
    )
    gap_factor: float = Field(default=1.5, gt=1, description="a step > factor/fs between samples is a gap")


@dataclass(frozen=True)
class GuardResult:
    """Per-window verdicts: `ok[b]` and one boolean mask per reason that fired."""

    ok: np.ndarray
    reasons: dict[str, np.ndarray]

    def reasons_of(self, index: int) -> list[str]:
        return [name for name, mask in self.reasons.items() if bool(mask[index])]


@dataclass
class InputGuard:
    """Checks windows against the sensor's limits."""

    range_min: np.ndarray
    range_max: np.ndarray
    sample_rate_hz: float
    config: GuardConfig = field(default_factory=GuardConfig)

    @classmethod
    def for_sensor(
        cls, sensor: SensorSpec, sample_rate_hz: float, config: GuardConfig | None = None
    ) -> "InputGuard":
        return cls(
            np.asarray(sensor.range_min, dtype=np.float64),
            np.asarray(sensor.range_max, dtype=np.float64),
            sample_rate_hz,
            config or GuardConfig(),
        )

    def check(self, windows: np.ndarray, timestamps: np.ndarray | None = None) -> GuardResult:
        """`windows` (B, W, A); optional `timestamps` (B, W) in seconds, NaN for a malformed reading.

        A cheap pass (per-axis min/max, one axis for frozen reads) clears most windows; only the
        suspects get the full, per-sample checks.
        """
        x = np.asarray(windows, dtype=np.float64)
        if x.ndim != 3 or x.shape[2] != self.range_min.shape[0]:
            raise ValueError(f"expected windows shaped (B, W, {self.range_min.shape[0]}), got {x.shape}")
        cfg = self.config
        n = x.shape[0]
        mn, mx = x.min(axis=1), x.max(axis=1)
        with np.errstate(invalid="ignore"):
            suspect = ~(np.isfinite(mn).all(axis=1) & np.isfinite(mx).all(axis=1))
            suspect |= ((mn < self._lo) | (mx > self._hi)).any(axis=1)
            suspect |= (
                (mx >= cfg.saturation_fraction * self.range_max)
                | (mn <= cfg.saturation_fraction * self.range_min)
            ).any(axis=1)
            suspect |= ((mx - mn) <= cfg.stuck_ptp).any(axis=1)
        same = (x[:, 1:, 0] == x[:, :-1, 0])[:, :, None]
        suspect |= _has_run(same, cfg.frozen_run - 1)
        reasons = {r: np.zeros(n, dtype=bool) for r in REASONS[:4]}
        if suspect.any():
            for reason, mask in self._full_check(x[suspect]).items():
                reasons[reason][suspect] = mask
        if timestamps is not None:
            t = np.asarray(timestamps, dtype=np.float64)
            reasons["malformed"] = np.asarray(np.isnan(t).any(axis=1))
            steps = np.diff(t, axis=1)
            limit = cfg.gap_factor / self.sample_rate_hz
            with np.errstate(invalid="ignore"):
                reasons["gap"] = np.asarray(((steps > limit) | (steps <= 0)).any(axis=1))
        bad = np.zeros(n, dtype=bool)
        for mask in reasons.values():
            bad |= mask
        return GuardResult(ok=~bad, reasons={k: v for k, v in reasons.items() if v.any()})

    @property
    def _lo(self) -> np.ndarray:
        return np.asarray(self.range_min - self.config.range_tolerance * (self.range_max - self.range_min))

    @property
    def _hi(self) -> np.ndarray:
        return np.asarray(self.range_max + self.config.range_tolerance * (self.range_max - self.range_min))

    def _full_check(self, x: np.ndarray) -> dict[str, np.ndarray]:
        cfg = self.config
        finite = np.isfinite(x)
        all_finite = finite.all(axis=(1, 2))
        xf = np.where(finite, x, 0.0)
        clipped = (xf >= cfg.saturation_fraction * self.range_max) | (
            xf <= cfg.saturation_fraction * self.range_min
        )
        flat_axis = (np.ptp(xf, axis=1) <= cfg.stuck_ptp).any(axis=1)
        repeated = (xf[:, 1:] == xf[:, :-1]).all(axis=2)[:, :, None]
        return {
            "nonfinite": ~all_finite,
            "out_of_range": np.asarray(((xf < self._lo) | (xf > self._hi)).any(axis=(1, 2))),
            "saturated": _has_run(clipped, cfg.saturation_run),
            "stuck": np.asarray((flat_axis | _has_run(repeated, cfg.frozen_run - 1)) & all_finite),
        }


def _has_run(mask: np.ndarray, run: int) -> np.ndarray:
    """True for each window (B, W, A) with `run` consecutive True samples on some axis."""
    if mask.shape[1] < run:
        return np.zeros(mask.shape[0], dtype=bool)
    c = np.cumsum(mask, axis=1, dtype=np.int32)
    c = np.concatenate([np.zeros_like(c[:, :1]), c], axis=1)
    window_sums = c[:, run:] - c[:, :-run]
    result: np.ndarray = (window_sums == run).any(axis=(1, 2))
    return result


@dataclass
class RejectCounter:
    """Rejections counted by reason, since start and since the last telemetry."""

    total: Counter[str] = field(default_factory=Counter)
    interval: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str, n: int = 1) -> None:
        if n:
            self.total[reason] += n
            self.interval[reason] += n

    def take_interval(self) -> dict[str, int]:
        out = dict(self.interval)
        self.interval.clear()
        return out
