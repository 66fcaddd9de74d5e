"""Wire-contract 'why' payloads the dashboard tests send: an imbalance explanation and commissioning
reports (ok, blind)."""

from typing import Any

from edgefleet.contracts import CommissioningReport, Explanation, FeatureDeviation


def imbalance(hint_text: str | None = None) -> Explanation:
    """An imbalance at 15 Hz: the 10-20 Hz band on ax far above the baseline, ISO zone C."""
    return Explanation(
        deviations=[
            FeatureDeviation(feature="ay_rms", axis="ay", quantity="rms", sigma=4.1),
            FeatureDeviation(feature="ax_band10-20", axis="ax", quantity="band10-20", sigma=8.34),
            FeatureDeviation(feature="az_kurtosis", axis="az", quantity="kurtosis", sigma=-2.2),
            FeatureDeviation(feature="ax_rms", axis="ax", quantity="rms", sigma=1.1),
        ],
        hint="imbalance",
        hint_text=hint_text,
        shaft_hz=15.0,
        iso_zone="C",
        velocity_mm_s=7.1,
    )


def report(status: str = "ok", **change: Any) -> CommissioningReport:
    blind = status == "blind"
    fields: dict[str, Any] = {
        "status": status,
        "windows": 600,
        "threshold": 4.2 if blind else 0.84,
        "card_threshold": 1.0,
        "target_far": 0.001,
        "confidence": 0.95,
        "method": "boxcox_tolerance:0.333",
        "spread_ratio_median": 3.1 if blind else 1.1,
        "spread_ratio_max": 6.2 if blind else 1.4,
        "widest_feature": "ax_kurtosis",
        "fault_visibility": 0.12 if blind else 1.0,
        "card_fault_visibility": 0.96,
        **change,
    }
    return CommissioningReport.model_validate(fields)
