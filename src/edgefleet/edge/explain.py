"""Explanations for anomaly events: which features deviate, a fault hint, the ISO 10816 zone.

The deviations are the window's standardized features (the model's input, in standard deviations
of this machine's baseline), largest first. The fault hint (`dsp.diagnosis`) compares the window's
spectrum with the mean spectrum of the last normal windows, kept as raw windows in a small ring so
that the result does not depend on how windows were batched.
"""

from collections import deque
from typing import Final

import numpy as np

from edgefleet.contracts import Explanation, FeatureDeviation
from edgefleet.dsp.diagnosis import estimate_shaft_hz, fault_hint, power_spectrum
from edgefleet.edge.decision import severity_zone

TOP_DEVIATIONS: Final = 5
TOP_BANDS: Final = 2
NORMAL_RING: Final = 32
MIN_NORMAL: Final = 4  # normal windows needed before a spectrum comparison means anything


def split_feature_name(name: str, axes: list[str]) -> tuple[str, str]:
    """`ax_band10-20` -> (`ax`, `band10-20`), with the card's axes (an axis name may hold `_`)."""
    for axis in sorted(axes, key=len, reverse=True):
        if name.startswith(axis + "_"):
            return axis, name[len(axis) + 1 :]
    head, _, tail = name.partition("_")
    return head, tail or head


class Explainer:
    """Remembers recent normal windows and explains anomalous ones."""

    def __init__(
        self,
        names: list[str],
        axes: list[str],
        sample_rate_hz: float,
        shaft_hz: float | None,
        accel_axes: list[int],
    ) -> None:
        self.names, self.axes = names, axes
        self.sample_rate_hz = sample_rate_hz
        self.shaft_hz = shaft_hz
        self.accel_axes = [a for a in accel_axes if a < len(axes)] or list(range(len(axes)))
        self._normal: deque[tuple[int, np.ndarray]] = deque(maxlen=NORMAL_RING)

    def reset(self) -> None:
        self._normal.clear()

    def remember(self, index: int, window: np.ndarray) -> None:
        """A window (W, A) judged normal (or collected while commissioning)."""
        self._normal.append((index, np.array(window, dtype=np.float64)))

    def deviations(self, z: np.ndarray) -> list[FeatureDeviation]:
        """The largest |sigma| first; the two largest band features always among them, since the
        band says *where* in the spectrum the change is (an RMS rise alone does not)."""
        order = np.argsort(-np.abs(z), kind="stable").tolist()
        split = [split_feature_name(self.names[k], self.axes) for k in range(len(self.names))]
        bands = [k for k in order if split[k][1].startswith("band")][:TOP_BANDS]
        others = [k for k in order if k not in bands][: TOP_DEVIATIONS - len(bands)]
        chosen = sorted(bands + others, key=lambda k: (-abs(float(z[k])), k))
        return [
            FeatureDeviation(
                feature=self.names[k], axis=split[k][0], quantity=split[k][1], sigma=round(float(z[k]), 2)
            )
            for k in chosen
        ]

    def explain(
        self,
        window: np.ndarray,
        z: np.ndarray,
        velocity_mm_s: float | None,
        zone_limits: tuple[float, float, float],
    ) -> Explanation:
        hint = text = None
        shaft, estimated = self.shaft_hz, False
        if len(self._normal) >= MIN_NORMAL:
            normal = np.stack([w for _, w in sorted(self._normal, key=lambda item: item[0])])
            freqs, normal_power = power_spectrum(normal[:, :, self.accel_axes], self.sample_rate_hz)
            mean_power = normal_power.mean(axis=0)
            if shaft is None:
                shaft, estimated = estimate_shaft_hz(freqs, mean_power), True
            _, power = power_spectrum(window[None][:, :, self.accel_axes], self.sample_rate_hz)
            found = fault_hint(freqs, power[0], mean_power, shaft)
            hint, text = found.hint, found.text
        return Explanation(
            deviations=self.deviations(z),
            hint=hint,  # type: ignore[arg-type]  # one of contracts.FAULT_HINTS (dsp cannot import them)
            hint_text=text,
            shaft_hz=round(shaft, 3) if shaft else None,
            shaft_hz_estimated=estimated and shaft is not None,
            iso_zone=severity_zone(velocity_mm_s, zone_limits) if velocity_mm_s is not None else None,  # type: ignore[arg-type]
            velocity_mm_s=round(velocity_mm_s, 3) if velocity_mm_s is not None else None,
        )


def summary(explanation: Explanation) -> str:
    """One line for the event's `message`: the hint, then the largest deviation."""
    parts: list[str] = []
    if explanation.hint and explanation.hint != "unknown":
        parts.append(explanation.hint)
    if explanation.deviations:
        top = explanation.deviations[0]
        parts.append(f"{top.axis} {top.quantity} {top.sigma:+.1f} sd")
    if explanation.iso_zone:
        parts.append(f"ISO zone {explanation.iso_zone}")
    return "anomaly" + (": " + ", ".join(parts) if parts else "")
