"""Window features, vectorized over a batch of windows; the same code runs in training and on devices.

Layout of the feature vector (and of `feature_names`): for each feature set in `config.sets` order,
for each axis in order, that set's features in this order:

- `stats`:    `mean`, `std` (population, ddof=0), `ptp` (max - min).
- `spectral` (all on the mean-removed window, so a slow sensor bias does not move them):
  `rms` (vibration RMS, sqrt(mean((x - mean)^2)); A/sqrt(2) for a sine of amplitude A),
  `crest` (max|x - mean| / rms), `kurtosis` (Pearson, m4 / m2^2; 3 for Gaussian noise, 1.5 for a
  sine sampled densely), then one
  `band<lo>-<hi>` per band in `bands_hz`: log10 of the mean-square power in [lo, hi) Hz, from the
  Hann-windowed FFT of the mean-removed window, scaled so that a sine of amplitude A inside the
  band gives log10(A^2 / 2) (+ `BAND_EPS` inside the log).

All arithmetic is float64; the result is float32.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray

from edgefleet.dsp.errors import FeatureError

FEATURE_SETS: Final = ("stats", "spectral")
STATS_FEATURES: Final = ("mean", "std", "ptp")
SPECTRAL_FEATURES: Final = ("rms", "crest", "kurtosis")
BAND_EPS: Final = 1e-10
_TINY: Final = 1e-12


@dataclass(frozen=True)
class FeatureConfig:
    """What `extract` computes. Mirrors `contracts.FeatureSpec` (sample rate, sets, bands)."""

    sample_rate_hz: float
    axes: tuple[str, ...]
    sets: tuple[str, ...] = ("stats",)
    bands_hz: tuple[tuple[float, float], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.sample_rate_hz <= 0:
            raise FeatureError(f"sample_rate_hz must be > 0, got {self.sample_rate_hz}")
        if not self.axes:
            raise FeatureError("at least one axis is needed")
        if not self.sets or any(s not in FEATURE_SETS for s in self.sets):
            raise FeatureError(f"sets must be a non-empty subset of {FEATURE_SETS}, got {self.sets}")
        if len(set(self.sets)) != len(self.sets):
            raise FeatureError(f"duplicate feature set in {self.sets}")
        if "spectral" in self.sets and not self.bands_hz:
            raise FeatureError("the spectral set needs bands_hz")
        nyquist = self.sample_rate_hz / 2
        for lo, hi in self.bands_hz:
            if not 0 <= lo < hi <= nyquist:
                raise FeatureError(f"band ({lo}, {hi}) Hz must satisfy 0 <= low < high <= {nyquist}")

    @classmethod
    def from_spec(
        cls,
        sample_rate_hz: float,
        axes: Sequence[str],
        sets: Sequence[str],
        bands_hz: Sequence[Sequence[float]] = (),
    ) -> "FeatureConfig":
        """Build from plain values, e.g. a model card: `from_spec(fs.sample_rate_hz, card.sensor.axes,
        fs.sets, fs.bands_hz)`."""
        return cls(
            float(sample_rate_hz),
            tuple(axes),
            tuple(sets),
            tuple((float(b[0]), float(b[1])) for b in bands_hz),
        )


def _band_name(lo: float, hi: float) -> str:
    return f"band{lo:g}-{hi:g}"


def feature_names(config: FeatureConfig) -> list[str]:
    """Names in the order `extract` produces them, e.g. `ax_mean`, `ax_band10-20`."""
    names: list[str] = []
    for feature_set in config.sets:
        per_axis = (
            list(STATS_FEATURES)
            if feature_set == "stats"
            else [*SPECTRAL_FEATURES, *(_band_name(lo, hi) for lo, hi in config.bands_hz)]
        )
        names.extend(f"{axis}_{name}" for axis in config.axes for name in per_axis)
    return names


def n_features(config: FeatureConfig) -> int:
    return len(feature_names(config))


def _stats(x: NDArray[np.float64]) -> NDArray[np.float64]:
    # x: [batch, axes, window] -> [batch, axes, 3]
    return np.stack([x.mean(axis=-1), x.std(axis=-1), np.ptp(x, axis=-1)], axis=-1)


def band_powers(
    x: NDArray[np.float64], sample_rate_hz: float, bands_hz: Sequence[tuple[float, float]]
) -> NDArray[np.float64]:
    """Mean-square power per band (linear, not log) of `x[..., window]`; a sine of amplitude A
    inside a band gives A^2 / 2."""
    n = x.shape[-1]
    hann = np.hanning(n + 2)[1:-1]  # no zero end points, so short windows keep every sample
    centred = x - x.mean(axis=-1, keepdims=True)
    spectrum = np.fft.rfft(centred * hann, axis=-1)
    power = spectrum.real**2 + spectrum.imag**2
    freqs = np.fft.rfftfreq(n, d=1.0 / sample_rate_hz)
    scale = 2.0 / (n * float(np.sum(hann**2)))
    out = np.empty((*x.shape[:-1], len(bands_hz)), dtype=np.float64)
    for i, (lo, hi) in enumerate(bands_hz):
        mask = (freqs >= lo) & (freqs < hi)
        out[..., i] = power[..., mask].sum(axis=-1) * scale
    return out


def _spectral(x: NDArray[np.float64], config: FeatureConfig) -> NDArray[np.float64]:
    centred = x - x.mean(axis=-1, keepdims=True)
    squared = centred * centred  # faster than ** on the device loop's hot path
    m2 = np.mean(squared, axis=-1)
    m4 = np.mean(squared * squared, axis=-1)
    rms = np.sqrt(m2)
    crest = np.max(np.abs(centred), axis=-1) / np.maximum(rms, _TINY)
    kurtosis = m4 / np.maximum(m2**2, _TINY)
    bands = np.log10(band_powers(x, config.sample_rate_hz, config.bands_hz) + BAND_EPS)
    return np.concatenate([np.stack([rms, crest, kurtosis], axis=-1), bands], axis=-1)


def extract(windows: NDArray[np.floating], config: FeatureConfig) -> NDArray[np.float32]:
    """`windows[batch, window, axes]` -> `features[batch, n_features]` (float32).

    A single window `[window, axes]` is accepted too and gives `[n_features]`.
    """
    single = windows.ndim == 2
    batch = windows[None] if single else windows
    if batch.ndim != 3:
        raise FeatureError(f"windows must be [batch, window, axes], got shape {windows.shape}")
    if batch.shape[2] != len(config.axes):
        raise FeatureError(f"windows have {batch.shape[2]} axes, the feature config {len(config.axes)}")
    if batch.shape[1] < 2:
        raise FeatureError(f"a window needs at least 2 samples, got {batch.shape[1]}")
    x = np.asarray(batch, dtype=np.float64).transpose(0, 2, 1)  # [batch, axes, window]
    if not np.all(np.isfinite(x)):
        raise FeatureError("windows contain NaN or infinite samples")
    parts = []
    for feature_set in config.sets:
        per_axis = _stats(x) if feature_set == "stats" else _spectral(x, config)
        parts.append(per_axis.reshape(x.shape[0], -1))  # axis-major, as feature_names
    out = np.concatenate(parts, axis=1).astype(np.float32)
    return out[0] if single else out
