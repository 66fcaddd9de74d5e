"""Cut a stream of samples into fixed windows with a hop, like the firmware's ring buffer."""

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Windower:
    """Accumulates (n, A) sample chunks and yields (W, A) windows every `hop` samples.

    A gap marker (`reset()`) drops the partial window, as the firmware does after a dropout.
    """

    window: int
    hop: int
    axes: int
    _buf: np.ndarray = field(init=False)
    _ts: np.ndarray = field(init=False)
    _fill: int = field(init=False, default=0)
    _until_next: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.window < 2 or self.hop < 1:
            raise ValueError("window must be >= 2 and hop >= 1")
        self._buf = np.zeros((self.window, self.axes), dtype=np.float64)
        self._ts = np.zeros(self.window, dtype=np.float64)
        self._until_next = self.window

    def reset(self) -> None:
        self._fill = 0
        self._until_next = self.window

    def push(
        self, samples: np.ndarray, timestamps: np.ndarray | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Add samples; return the completed (window, timestamps) pairs in order."""
        samples = np.asarray(samples, dtype=np.float64).reshape(-1, self.axes)
        ts = np.full(len(samples), np.nan) if timestamps is None else np.asarray(timestamps, dtype=np.float64)
        out: list[tuple[np.ndarray, np.ndarray]] = []
        i = 0
        n = len(samples)
        while i < n:
            take = min(n - i, self._until_next, self.window)
            # slide the buffer left when full; keep the newest `window` samples
            room = self.window - self._fill
            if take > room:
                shift = take - room
                self._buf[:-shift] = self._buf[shift:]
                self._ts[:-shift] = self._ts[shift:]
                self._fill -= shift
            self._buf[self._fill : self._fill + take] = samples[i : i + take]
            self._ts[self._fill : self._fill + take] = ts[i : i + take]
            self._fill += take
            self._until_next -= take
            i += take
            if self._until_next == 0:
                out.append((self._buf.copy(), self._ts.copy()))
                self._until_next = self.hop
        return out
