"""Person presence from per-frame scores: smoothing and hysteresis, so one person is one event."""

from dataclasses import dataclass, replace
from typing import Final, Literal

Transition = Literal["raised", "cleared"]
DEFAULT_THRESHOLD_ON: Final = 0.6


@dataclass(frozen=True)
class DetectionConfig:
    """`threshold_on` None: the model card's threshold, else DEFAULT_THRESHOLD_ON (the firmware's rule)."""

    threshold_on: float | None = None
    threshold_off: float = 0.4
    smoothing: float = 0.5  # weight of the newest frame in the moving average

    def __post_init__(self) -> None:
        on = 1.0 if self.threshold_on is None else self.threshold_on  # None: checked by for_card()
        if not 0 <= self.threshold_off < on <= 1:
            raise ValueError("need 0 <= threshold_off < threshold_on <= 1")
        if not 0 < self.smoothing <= 1:
            raise ValueError("smoothing must be in (0, 1]")

    def for_card(self, card_threshold: float | None) -> "DetectionConfig":
        """The settings in force with a model whose card says `card_threshold` (None: it says none)."""
        if self.threshold_on is not None:
            return self
        on = DEFAULT_THRESHOLD_ON if card_threshold is None else card_threshold
        if not 0 <= self.threshold_off < on <= 1:
            raise ValueError(
                f"the model card's threshold {on} needs 0 <= threshold_off ({self.threshold_off}) < it <= 1; "
                "set threshold_on"
            )
        return replace(self, threshold_on=on)


class PresenceTracker:
    """Raises when the smoothed score crosses `threshold_on`, clears below `threshold_off`."""

    def __init__(self, config: DetectionConfig) -> None:
        self.config = config.for_card(None)
        self.threshold_on: float = self.config.threshold_on or DEFAULT_THRESHOLD_ON  # for_card set it (> 0)
        self.smoothed: float | None = None
        self.present = False

    def update(self, score: float) -> Transition | None:
        a = self.config.smoothing
        self.smoothed = score if self.smoothed is None else a * score + (1 - a) * self.smoothed
        if not self.present and self.smoothed >= self.threshold_on:
            self.present = True
            return "raised"
        if self.present and self.smoothed < self.config.threshold_off:
            self.present = False
            return "cleared"
        return None
