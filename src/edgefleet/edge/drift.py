"""Drift: how far live features have moved from the distribution the model is fed with.

The statistic is the root-mean-square over features of the standardized mean shift of an
exponentially weighted running mean: 0 when live features match the reference, about k when
every feature has moved k reference standard deviations. The reference is the model card's
training standardization, or the commissioned baseline once the device has commissioned.
"""

from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class DriftConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    halflife_windows: float = Field(default=200.0, gt=0)
    limit: float = Field(default=1.5, gt=0, description="raise a drift event above this")
    clear_below: float = Field(default=1.0, gt=0, description="clear it below this")
    min_windows: int = Field(default=50, ge=1, description="windows before the statistic is trusted")


@dataclass
class DriftMonitor:
    config: DriftConfig = field(default_factory=DriftConfig)
    _mean_z: np.ndarray | None = None
    count: int = 0
    active: bool = False

    def reset(self) -> None:
        self._mean_z = None
        self.count = 0
        self.active = False

    @property
    def value(self) -> float | None:
        if self._mean_z is None or self.count < self.config.min_windows:
            return None
        return float(np.sqrt(np.mean(self._mean_z**2)))

    def update(self, z: np.ndarray) -> bool | None:
        """Add standardized features (B, F); return the last state change in the batch, if any."""
        changes = self.update_rows(z)
        return changes[-1][1] if changes else None

    def update_rows(self, z: np.ndarray) -> list[tuple[int, bool, float]]:
        """Add standardized features (B, F) one window at a time, as the firmware does; return the
        state changes as (row in the batch, raised?, statistic), so any batching gives the same
        events."""
        z = np.asarray(z, dtype=np.float64).reshape(-1, z.shape[-1])
        keep = 0.5 ** (1.0 / self.config.halflife_windows)
        changes: list[tuple[int, bool, float]] = []
        for i, row in enumerate(z):
            self.count += 1
            if self._mean_z is None:
                self._mean_z = row.copy()
            else:
                self._mean_z = keep * self._mean_z + (1.0 - keep) * row
            if self.count < self.config.min_windows:
                continue
            value = float(np.sqrt(np.mean(self._mean_z**2)))
            if not self.active and value > self.config.limit:
                self.active = True
                changes.append((i, True, value))
            elif self.active and value < self.config.clear_below:
                self.active = False
                changes.append((i, False, value))
        return changes
