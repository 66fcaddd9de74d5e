"""A plain fault hint from where an anomalous window's extra vibration energy sits in the spectrum.

Classic rotating-machine rules (ISO 13373-2 style), applied to the *excess* power of the window
over the machine's own recent normal spectrum, per axis, relative to that axis's normal power:

- energy at the shaft frequency (1x): imbalance;
- at twice it (2x) more than at 1x: misalignment;
- spread over several orders (1x, 2x, 3x ... and the 0.5x / 1.5x / 2.5x sub-harmonics): looseness;
- most of it in the high band (above 2.75x) with next to nothing at 1x and 2x: bearing (defect
  impacts ringing a structural resonance; they do not move the shaft lines).

The shaft frequency is configured, or estimated as the strongest low-frequency peak of the normal
spectrum (the 1x line dominates most healthy machines). Pure numpy.
"""

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

HARMONIC_TOLERANCE: Final = 0.06  # +-6 % of the line frequency (speed wander), at least one bin
HIGH_BAND_ORDER: Final = 2.75  # above the 2.5x line: bearing defect lines and the resonances they ring
ORDERS: Final = (1.0, 2.0, 0.5, 1.5, 2.5, 3.0, 4.0, 5.0, 6.0)
HINT_TEXT: Final = {
    "imbalance": "imbalance: energy at the shaft frequency ({shaft} Hz)",
    "misalignment": "misalignment: energy at twice the shaft frequency ({two} Hz)",
    "looseness": "looseness: energy spread over many shaft harmonics",
    "bearing": "bearing: energy in the high band (above {high} Hz), none at the shaft frequency",
    "unknown": "no typical fault pattern in the spectrum",
}


@dataclass(frozen=True)
class Hint:
    hint: str
    text: str
    shaft_hz: float | None
    shares: dict[str, float]  # share of the excess energy: 1x, 2x, other harmonics, high band


def power_spectrum(
    windows: NDArray[np.floating], sample_rate_hz: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(freqs (K,), power (B, A, K)) of windows (B, W, A): Hann window, mean removed."""
    x = np.asarray(windows, dtype=np.float64).transpose(0, 2, 1)
    n = x.shape[-1]
    hann = np.hanning(n + 2)[1:-1]
    spectrum = np.fft.rfft((x - x.mean(axis=-1, keepdims=True)) * hann, axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2) * (2.0 / (n * float(np.sum(hann**2))))
    freqs = np.asarray(np.fft.rfftfreq(n, d=1.0 / sample_rate_hz), dtype=np.float64)
    return freqs, np.asarray(power, dtype=np.float64)


def estimate_shaft_hz(freqs: NDArray[np.float64], normal_power: NDArray[np.float64]) -> float | None:
    """The strongest peak of the normal spectrum (A, K) summed over axes (each axis scaled to unit
    power), above the first two bins and below half of Nyquist, refined between bins by a parabola
    through the log power; None if there is no clear peak."""
    total = (normal_power / np.maximum(normal_power.sum(axis=-1, keepdims=True), 1e-30)).sum(axis=0)
    band = np.nonzero((np.arange(len(freqs)) >= 2) & (freqs <= freqs[-1] / 2))[0]
    if len(band) < 3:
        return None
    peak = int(band[int(np.argmax(total[band]))])
    if total[peak] < 3.0 * float(np.median(total[band])):
        return None
    a, b, c = np.log(np.maximum(total[peak - 1 : peak + 2], 1e-30))
    curvature = a - 2 * b + c
    offset = 0.5 * (a - c) / curvature if curvature < 0 else 0.0
    return float(freqs[peak] + np.clip(offset, -0.5, 0.5) * (freqs[1] - freqs[0]))


def _line_mask(freqs: NDArray[np.float64], line_hz: float) -> NDArray[np.bool_]:
    width = max(HARMONIC_TOLERANCE * line_hz, float(freqs[1] - freqs[0]) if len(freqs) > 1 else 0.0)
    return np.asarray(np.abs(freqs - line_hz) <= width)


def fault_hint(
    freqs: NDArray[np.float64],
    window_power: NDArray[np.float64],
    normal_power: NDArray[np.float64],
    shaft_hz: float | None,
) -> Hint:
    """The hint for one window's power (A, K) against the normal power (A, K)."""
    reference = np.maximum(normal_power.sum(axis=-1, keepdims=True), 1e-30)
    excess = (np.maximum(window_power - normal_power, 0.0) / reference).sum(axis=0)
    excess[:2] = 0.0  # DC and the first bin: drift and gravity, not vibration
    total = float(excess.sum())
    if shaft_hz is None or total <= 0.0:
        return Hint("unknown", HINT_TEXT["unknown"], shaft_hz, {})
    high = freqs > HIGH_BAND_ORDER * shaft_hz
    taken = np.zeros(len(freqs), dtype=bool)
    order_share: dict[float, float] = {}
    for order in ORDERS:  # 1x and 2x first: they keep their bins when lines are close
        if order * shaft_hz < freqs[-1]:
            mask = _line_mask(freqs, order * shaft_hz) & ~taken
            taken |= mask
            order_share[order] = float(excess[mask].sum()) / total
    one, two = order_share.get(1.0, 0.0), order_share.get(2.0, 0.0)
    shares = {
        "1x": one,
        "2x": two,
        "harmonics": sum(v for k, v in order_share.items() if k not in (1.0, 2.0)),
        "high": float(excess[high].sum()) / total,
    }
    strong_orders = sum(v >= 0.05 for v in order_share.values())
    if shares["high"] >= 0.6 and one + two < 0.15:
        hint = "bearing"
    elif strong_orders >= 3 and one < 0.6:
        hint = "looseness"
    elif two > one and two >= 0.25:
        hint = "misalignment"
    elif one >= 0.25:
        hint = "imbalance"
    else:
        hint = "unknown"
    text = HINT_TEXT[hint].format(
        shaft=f"{shaft_hz:.3g}", two=f"{2 * shaft_hz:.3g}", high=f"{HIGH_BAND_ORDER * shaft_hz:.3g}"
    )
    return Hint(hint, text, shaft_hz, {k: round(v, 3) for k, v in shares.items()})
