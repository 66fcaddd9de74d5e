"""Per-interval statistics for the `telemetry` message."""

from dataclasses import dataclass, field

import numpy as np


@dataclass
class IntervalStats:
    """What happened since the last telemetry message."""

    windows: int = 0
    anomalous: int = 0
    scores: list[float] = field(default_factory=list)
    invoke_us: list[float] = field(default_factory=list)

    def add(self, score: float | None, anomalous: bool, invoke_us: float | None) -> None:
        self.windows += 1
        if score is not None:
            self.scores.append(score)
            self.anomalous += int(anomalous)
        if invoke_us is not None:
            self.invoke_us.append(invoke_us)

    def summary(self) -> dict[str, float | int | None]:
        scored = len(self.scores)
        s = np.asarray(self.scores) if scored else None
        return {
            "windows": self.windows,
            "anomaly_rate": self.anomalous / scored if scored else None,
            "score_p50": float(np.quantile(s, 0.5)) if s is not None else None,
            "score_p95": float(np.quantile(s, 0.95)) if s is not None else None,
            "score_max": float(s.max()) if s is not None else None,
            "inference_us": float(np.mean(self.invoke_us)) if self.invoke_us else None,
        }
