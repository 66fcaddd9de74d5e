"""Decisions: threshold with hysteresis and k-of-n debounce, the ISO 10816-style rule, the local alert."""

import logging
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

log = logging.getLogger(__name__)

STANDARD_GRAVITY: Final = 9.80665


class DebounceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k: int = Field(default=3, ge=1, description="anomalous windows among the last n that raise")
    n: int = Field(default=5, ge=1)
    m: int = Field(default=5, ge=1, description="consecutive normal windows that clear")
    hysteresis: float = Field(
        default=0.9, gt=0, le=1, description="while raised, a window counts as normal below this * threshold"
    )

    @model_validator(mode="after")
    def _k_le_n(self) -> "DebounceConfig":
        if self.k > self.n:
            raise ValueError("debounce needs k <= n")
        return self


@dataclass
class Transition:
    """A change of the debounced state: `active` True when raised, False when cleared."""

    active: bool


@dataclass
class Debouncer:
    """k of the last n windows over the threshold raise; m consecutive normal windows clear."""

    config: DebounceConfig = field(default_factory=DebounceConfig)
    active: bool = False
    _recent: deque[bool] = field(init=False)
    _normal_run: int = field(init=False, default=0)
    _over: int = field(init=False, default=0)  # True entries in _recent

    def __post_init__(self) -> None:
        self._recent = deque(maxlen=self.config.n)

    def reset(self) -> None:
        self.active = False
        self._recent.clear()
        self._normal_run = 0
        self._over = 0

    def recent_count(self) -> int:
        """Anomalous windows among the last n."""
        return self._over

    def update_flag(self, over: bool) -> Transition | None:
        if not over and not self.active and not self._over:
            return None  # idle and normal: appending another normal window changes nothing
        if len(self._recent) == self._recent.maxlen and self._recent[0]:
            self._over -= 1
        self._recent.append(over)
        self._over += over
        if not self.active:
            if self._over >= self.config.k:
                self.active = True
                self._normal_run = 0
                return Transition(True)
            return None
        self._normal_run = 0 if over else self._normal_run + 1
        if self._normal_run >= self.config.m:
            self.reset()
            return Transition(False)
        return None

    def update(self, score: float, threshold: float) -> Transition | None:
        """While raised, a window counts as normal only below hysteresis * threshold."""
        limit = threshold * self.config.hysteresis if self.active else threshold
        return self.update_flag(score > limit)


class IsoRuleConfig(BaseModel):
    """Vibration severity from RMS velocity, zones as in ISO 10816-1 (class III machines by default)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    axes: list[int] = Field(default_factory=lambda: [0, 1, 2], description="indices of accelerometer axes")
    to_m_s2: float = Field(
        default=STANDARD_GRAVITY, gt=0, description="multiply raw units by this to get m/s^2"
    )
    band_hz: tuple[float, float] = (10.0, 1000.0)
    zone_limits_mm_s: tuple[float, float, float] = Field(
        default=(1.8, 4.5, 11.2), description="A/B, B/C, C/D boundaries, mm/s RMS (class III)"
    )
    alarm_zone: str = Field(default="C", pattern="^[BCD]$")


@lru_cache(maxsize=16)
def _velocity_basis(n: int, sample_rate_hz: float, lo: float, hi: float) -> tuple[np.ndarray, float]:
    """A real DFT basis (n, 2K) of the Hann-windowed in-band bins, each column divided by 2*pi*f."""
    freqs = np.fft.rfftfreq(n, d=1.0 / sample_rate_hz)
    k = np.nonzero((freqs >= lo) & (freqs <= hi) & (freqs > 0))[0]
    t = np.arange(n)[:, None]
    phase = 2 * np.pi * t * k[None, :] / n
    scale = np.hanning(n)[:, None] / (2 * np.pi * freqs[k][None, :])
    basis = np.concatenate([np.cos(phase) * scale, np.sin(phase) * scale], axis=1)
    # Parseval for a one-sided spectrum, with the Hann window's power correction (mean of w^2 = 3/8)
    return np.ascontiguousarray(basis, dtype=np.float32), 2.0 / (n * n * 0.375)


def rms_velocity_mm_s(windows: np.ndarray, sample_rate_hz: float, config: IsoRuleConfig) -> np.ndarray:
    """RMS velocity (mm/s) per window (B, W, A): integrate acceleration in the frequency domain.

    The largest of the configured axes is returned, like a single-axis severity reading.
    """
    windows = np.asarray(windows)
    axes = [a for a in config.axes if a < windows.shape[2]] or [0]
    b, n = windows.shape[:2]
    # float32 is plenty for a severity zone and halves the work of the projection
    x = np.ascontiguousarray(windows[:, :, axes].transpose(0, 2, 1), dtype=np.float32).reshape(-1, n)
    basis, norm = _velocity_basis(n, sample_rate_hz, *config.band_hz)
    # the mean (gravity) is removed first, so no DC leaks through the Hann window into the band
    coeffs = ((x - x.mean(axis=1, keepdims=True)) @ basis).astype(np.float64)
    rms = np.sqrt(norm * (coeffs**2).sum(axis=1)).reshape(b, len(axes)) * 1000.0 * config.to_m_s2
    result: np.ndarray = rms.max(axis=1)
    return result


def severity_zone(velocity_mm_s: float, limits: tuple[float, float, float]) -> str:
    a_b, b_c, c_d = limits
    if velocity_mm_s < a_b:
        return "A"
    if velocity_mm_s < b_c:
        return "B"
    return "C" if velocity_mm_s < c_d else "D"


@dataclass
class SimulatedGpio:
    """A local alert output (relay, beacon) that works with no network: a pin level and a log of edges."""

    pin: int = 5
    level: bool = False
    edges: list[tuple[float, bool]] = field(default_factory=list)

    def set(self, level: bool, at: float) -> None:
        if level != self.level:
            self.level = level
            self.edges.append((at, level))
            log.debug("GPIO %d -> %s", self.pin, "HIGH" if level else "LOW")
