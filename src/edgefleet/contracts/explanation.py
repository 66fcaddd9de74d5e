"""What an anomaly event and a commissioning report say about *why* (device -> server -> dashboard).

An anomaly event that only says "anomaly" does not help a maintenance engineer decide whether to
walk to the machine. `Explanation` names the features that deviate most (axis, quantity, how many
standard deviations from this machine's own baseline), a plain fault hint where the physics
allows one, and the ISO 10816 zone of the same window.

`CommissioningReport` is what a device learned when it commissioned, and whether it can still see
the faults its model was trained on (`status`): a blind device that looks healthy is the worst
failure in the field, so it says so.
"""

from typing import Annotated, Final, Literal, get_args

from pydantic import Field

from edgefleet.contracts.base import Count, Fraction, Name, ShortText, WireModel

FaultHint = Literal["imbalance", "misalignment", "looseness", "bearing", "unknown"]
FAULT_HINTS: Final[tuple[str, ...]] = get_args(FaultHint)
IsoZone = Literal["A", "B", "C", "D"]
CommissioningStatus = Literal["ok", "blind", "noisy_baseline"]
COMMISSIONING_STATUSES: Final[tuple[str, ...]] = get_args(CommissioningStatus)
MAX_DEVIATIONS: Final = 8
Sigma = Annotated[float, Field(ge=-1e6, le=1e6)]


class FeatureDeviation(WireModel):
    """One feature of the window, in standard deviations of the device's baseline."""

    feature: Name = Field(description="the full feature name, e.g. `ax_band10-20`")
    axis: Name = Field(description="the sensor axis, e.g. `ax`")
    quantity: Name = Field(description="what was measured on it, e.g. `band10-20` (Hz), `rms`, `kurtosis`")
    sigma: Sigma = Field(description="(value - baseline mean) / baseline std; signed")


class Explanation(WireModel):
    """Why a window was anomalous: the largest deviations first, and a fault hint."""

    deviations: list[FeatureDeviation] = Field(default_factory=list, max_length=MAX_DEVIATIONS)
    hint: FaultHint | None = Field(
        default=None,
        description="imbalance: energy at the shaft frequency; misalignment: at twice it; looseness: "
        "many harmonics; bearing: non-harmonic energy in the high band; unknown: none of these",
    )
    hint_text: ShortText | None = None
    shaft_hz: Annotated[float, Field(gt=0, le=1e6)] | None = Field(
        default=None, description="the shaft frequency the hint was computed with"
    )
    shaft_hz_estimated: bool = Field(
        default=False, description="True when the shaft frequency was estimated from the baseline spectrum"
    )
    iso_zone: IsoZone | None = Field(default=None, description="ISO 10816 zone of the same window")
    velocity_mm_s: Annotated[float, Field(ge=0, le=1e6)] | None = None


class CommissioningReport(WireModel):
    """The result of one commissioning: the threshold, its method and guarantee, and its quality."""

    status: CommissioningStatus
    windows: Count = Field(description="commissioning windows used")
    threshold: float = Field(description="the threshold in force from now on")
    card_threshold: float
    target_far: Fraction = Field(description="per-window false-alarm target (the model card's by default)")
    confidence: Fraction = Field(
        description="probability that the true per-window rate is at or below target"
    )
    method: Name = Field(
        description="which bound set the threshold: `boxcox_tolerance:<power>` or `order_statistic`"
    )
    spread_ratio_median: Annotated[float, Field(ge=0, le=1e9)] = Field(
        description="median over features of field std / card std"
    )
    spread_ratio_max: Annotated[float, Field(ge=0, le=1e9)]
    widest_feature: Name | None = None
    fault_visibility: Fraction | None = Field(
        default=None,
        description="fraction of the model card's known fault windows that score above the new threshold "
        "once re-normalized to this baseline (None: the card carries no fault probes)",
    )
    card_fault_visibility: Fraction | None = Field(
        default=None, description="the same fraction under the card's own baseline and threshold"
    )
    message: ShortText | None = None
