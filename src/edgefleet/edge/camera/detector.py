"""Person presence from per-frame scores: smoothing and hysteresis, so one person is one event."""

from dataclasses import dataclass
from typing import Literal

Transition = Literal["raised", "cleared"]


@dataclass(frozen=True)
class DetectionConfig:
    threshold_on: float = 0.6
    threshold_off: float = 0.4
    smoothing: float = 0.5  # weight of the newest frame in the moving average

    def __post_init__(self) -> None:
        if not 0 <= self.threshold_off < self.threshold_on <= 1:
            raise ValueError("need 0 <= threshold_off < threshold_on <= 1")
        if not 0 < self.smoothing <= 1:
            raise ValueError("smoothing must be in (0, 1]")


class PresenceTracker:
    """Raises when the smoothed score crosses `threshold_on`, clears below `threshold_off`."""

    def __init__(self, config: DetectionConfig) -> None:
        self.config = config
        self.smoothed: float | None = None
        self.present = False

    def update(self, score: float) -> Transition | None:
        a = self.config.smoothing
        self.smoothed = score if self.smoothed is None else a * score + (1 - a) * self.smoothed
        if not self.present and self.smoothed >= self.config.threshold_on:
            self.present = True
            return "raised"
        if self.present and self.smoothed < self.config.threshold_off:
            self.present = False
            return "cleared"
        return None
