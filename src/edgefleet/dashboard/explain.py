"""Plain words for what a device says about *why*: an anomaly's explanation and a commissioning report.

Pure functions from the stored JSON (`event.data["explanation"]`, `["commissioning"]`, or the live
stream's keys of the same names) to short sentences. The pages put the result in text elements,
never into HTML: `hint_text`, `message` and feature names come from devices.
"""

import re
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from edgefleet.contracts import CommissioningReport, Explanation, FeatureDeviation

TOP_DEVIATIONS: Final = 3
_M = TypeVar("_M", bound=BaseModel)
_BAND = re.compile(r"^band(?P<lo>[0-9.eE+-]+)-(?P<hi>[0-9.eE+-]+)$")
_HINTS: Final = {
    "imbalance": "energy at the shaft frequency{shaft}",
    "misalignment": "energy at twice the shaft frequency{twice}",
    "looseness": "many harmonics of the shaft frequency{shaft}",
    "bearing": "non-harmonic energy in the high band",
    "unknown": "no known fault pattern",
}
ISO_ZONES: Final = {
    "A": "as new",
    "B": "acceptable for long-term operation",
    "C": "unsatisfactory for long-term operation",
    "D": "severe enough to cause damage",
}
STATUS_LABEL: Final = {
    "ok": "commissioned",
    "blind": "blind to its faults",
    "noisy_baseline": "noisy baseline",
}


def _parse(model: type[_M], value: Any) -> _M | None:
    """The stored JSON as the contract's model; None when absent or not understood (a newer device)."""
    if isinstance(value, model):
        return value
    if not isinstance(value, dict):
        return None
    try:
        return model.model_validate(value, strict=False)
    except ValidationError:
        return None


def explanation_of(event: dict[str, Any]) -> Explanation | None:
    """From a live-stream event (`explanation` key) or a stored row's `data`."""
    data = event.get("data")
    raw = event.get("explanation") or (data.get("explanation") if isinstance(data, dict) else None)
    return _parse(Explanation, raw)


def report_of(event: dict[str, Any]) -> CommissioningReport | None:
    data = event.get("data")
    raw = event.get("commissioning") or (data.get("commissioning") if isinstance(data, dict) else None)
    return _parse(CommissioningReport, raw)


def number(value: float) -> str:
    """Three significant digits below 1,000, whole with separators up to a billion: 0.0123, 4.2, 1,300."""
    if abs(value) >= 1000 and abs(value) < 1e9:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _hz(value: float) -> str:
    return f"{value:.3g} Hz"


def hint_line(explanation: Explanation) -> str | None:
    """'imbalance: energy at the shaft frequency 15 Hz' (the device's own words when it sent them)."""
    hint = explanation.hint
    text = (explanation.hint_text or "").strip()
    if hint is None:
        return text or None
    if not text:
        shaft = explanation.shaft_hz
        text = _HINTS[hint].format(
            shaft=f" {_hz(shaft)}" if shaft else "", twice=f" ({_hz(2 * shaft)})" if shaft else ""
        )
        if shaft and explanation.shaft_hz_estimated and hint in ("imbalance", "misalignment", "looseness"):
            text += " (shaft frequency estimated)"
    return text if text.lower().startswith(hint) else f"{hint}: {text}"


def _quantity(quantity: str) -> str:
    band = _BAND.match(quantity)
    return f"band {band['lo']}-{band['hi']} Hz" if band else quantity


def _sigma(sigma: float) -> str:
    return f"{sigma:+.1f}σ" if abs(sigma) < 1000 else f"{sigma:+.0f}σ"


def deviation_text(deviation: FeatureDeviation) -> str:
    """'ax band 10-20 Hz +8.3σ'."""
    return f"{deviation.axis} {_quantity(deviation.quantity)} {_sigma(deviation.sigma)}"


def top_deviations(explanation: Explanation, n: int = TOP_DEVIATIONS) -> list[str]:
    ranked = sorted(explanation.deviations, key=lambda d: abs(d.sigma), reverse=True)
    return [deviation_text(d) for d in ranked[:n]]


def iso_text(explanation: Explanation) -> str | None:
    """'ISO 10816 zone C (7.1 mm/s): unsatisfactory for long-term operation'."""
    zone = explanation.iso_zone
    if zone is None:
        return None
    velocity = explanation.velocity_mm_s
    speed = (
        "" if velocity is None else f" ({velocity:.2g} mm/s)" if velocity < 1 else f" ({velocity:.1f} mm/s)"
    )
    return f"ISO 10816 zone {zone}{speed}: {ISO_ZONES[zone]}"


def explanation_lines(explanation: Explanation) -> list[str]:
    """Up to three lines: the fault hint, the largest deviations, the ISO zone."""
    lines = [hint_line(explanation), " · ".join(top_deviations(explanation)), iso_text(explanation)]
    return [line for line in lines if line]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def commissioning_summary(report: CommissioningReport) -> str:
    """One line for an event list: the status, the threshold against the card's, what it can see."""
    parts = [
        f"{STATUS_LABEL.get(report.status, report.status)}: threshold {number(report.threshold)} "
        f"(model card {number(report.card_threshold)}) from {report.windows} windows"
    ]
    if report.fault_visibility is not None:
        card = report.card_fault_visibility
        parts.append(
            f"known faults visible {_pct(report.fault_visibility)}"
            + ("" if card is None else f" (card {_pct(card)})")
        )
    parts.append(f"spread {report.spread_ratio_max:.2g}x the training data's at most")
    return " · ".join(parts)


def commissioning_figures(report: CommissioningReport | None, fault_visibility: float | None) -> list[str]:
    """The figures a warning about a blind or noisy device carries, one sentence each."""
    figures: list[str] = []
    visible = (
        fault_visibility if fault_visibility is not None else report.fault_visibility if report else None
    )
    if visible is not None:
        card = report.card_fault_visibility if report else None
        figures.append(
            f"Fault visibility {_pct(visible)}: that share of the model card's known fault windows still "
            "scores above the threshold on this machine's baseline"
            + ("" if card is None else f" (under the card's own baseline: {_pct(card)})")
            + "."
        )
    if report is not None:
        widest = f", widest on {report.widest_feature}" if report.widest_feature else ""
        figures.append(
            f"Spread ratio: the field baseline varies {report.spread_ratio_median:.2g}x as much as the "
            f"training data in the median feature, up to {report.spread_ratio_max:.2g}x{widest}."
        )
        figures.append(
            f"Threshold {number(report.threshold)} against the model card's {number(report.card_threshold)}, "
            f"from {report.windows} windows ({report.method})."
        )
    return figures


def commissioning_headline(status: str) -> str:
    if status == "blind":
        return (
            "This device can no longer see the faults its model was trained on: on this machine's "
            "baseline the known faults no longer cross the threshold. Re-commission it while the "
            "machine runs healthy, or retrain the model on this machine's data."
        )
    return (
        "This device's baseline is far noisier than the data its model was trained on: faults can hide "
        "in that noise, so it may no longer see the faults it was trained on. Re-commission it while "
        "the machine runs healthy and steady, or retrain the model on this machine's data."
    )


def commissioned_quietly(report: CommissioningReport) -> str:
    """The line an ok device shows: what commissioning chose, against the card."""
    text = (
        f"Commissioned: threshold {number(report.threshold)} (model card {number(report.card_threshold)}) "
        f"from {report.windows} windows; false alarms at most {report.target_far:.2%} of windows "
        f"with {report.confidence:.0%} confidence ({report.method})"
    )
    if report.fault_visibility is not None:
        text += f"; known faults visible {_pct(report.fault_visibility)}"
    return text + "."


def event_why(event: dict[str, Any]) -> list[str]:
    """The lines an event list shows under an event: its explanation, or its commissioning report."""
    explanation = explanation_of(event)
    if explanation is not None:
        return explanation_lines(explanation)
    report = report_of(event)
    return [commissioning_summary(report)] if report is not None else []
