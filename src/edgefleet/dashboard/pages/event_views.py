"""Widgets for events and their 'why': a device's event table, an anomaly's explanation, a
commissioning report and a device's commissioning state.

Text only (`ui.label`, table cells): hint texts, messages and feature names come from devices."""

from typing import Any

from nicegui import ui

from edgefleet.contracts import CommissioningReport, Explanation
from edgefleet.dashboard.explain import (
    commissioned_quietly,
    commissioning_figures,
    commissioning_headline,
    commissioning_summary,
    event_why,
    explanation_lines,
    number,
)
from edgefleet.dashboard.insight import CommissioningState
from edgefleet.dashboard.layout import cards_when_narrow, stamp
from edgefleet.server.schemas import EventPublic


def explanation_block(explanation: Explanation) -> None:
    """The fault hint, the largest deviations and the ISO zone, one line each."""
    with ui.column().classes("gap-0").props('data-testid="explanation"'):
        for i, line in enumerate(explanation_lines(explanation)):
            ui.label(line).classes("text-sm" if i == 0 else "text-sm ef-muted")


def report_block(report: CommissioningReport) -> None:
    with ui.column().classes("gap-0").props('data-testid="commissioning-report"'):
        ui.label(commissioning_summary(report)).classes("text-sm")
        if report.message:
            ui.label(f"device says: {report.message}").classes("text-sm ef-muted")


def commissioning_banner(state: CommissioningState | None) -> None:
    """A warning that cannot be missed for a blind or noisy device; one quiet line when it is fine."""
    if state is None:
        return
    report = state.report
    if not state.needs_action:
        if report is not None and report.status == "ok":
            ui.label(commissioned_quietly(report)).classes("text-sm ef-muted").props(
                'data-testid="commissioning-ok"'
            )
        return
    card = ui.card().classes("w-full p-4 gap-1 ef-banner-alarm")
    with card.props('data-testid="commissioning-warning" role="alert"'):
        with ui.row().classes("items-center gap-2 no-wrap"):
            ui.icon("visibility_off" if state.status == "blind" else "graphic_eq", size="md").classes(
                "ef-alarm-text"
            )
            title = "Blind to its faults" if state.status == "blind" else "Noisy baseline"
            ui.label(title).classes("text-lg font-semibold ef-alarm-text")
            ui.label(f"commissioning status {state.status}, reported {stamp(state.reported_at)}").classes(
                "text-xs ef-muted"
            )
        ui.label(commissioning_headline(state.status)).classes("font-semibold")
        for line in commissioning_figures(report, state.fault_visibility):
            ui.label(line).classes("text-sm")
        if report is not None and report.message:
            ui.label(f"The device says: {report.message}").classes("text-sm ef-muted")


def _detail(event: EventPublic) -> str:
    if event.message and "explanation" not in event.data:  # else the device's summary of what `why` says
        return event.message
    if event.person_count:
        return f"{event.person_count} person(s)"
    return event.reason or ""


def events_table(events: list[EventPublic]) -> None:
    """A device's recent events; an anomaly's explanation (or a commissioning report) in plain words."""
    columns: list[dict[str, Any]] = [
        {"name": "ts", "label": "time (UTC)", "field": "ts", "align": "left"},
        {"name": "kind", "label": "kind", "field": "kind", "align": "left"},
        {"name": "state", "label": "state", "field": "state", "align": "left"},
        {"name": "severity", "label": "severity", "field": "severity", "align": "left"},
        {"name": "score", "label": "score / threshold", "field": "score", "align": "right"},
        {"name": "what", "label": "detail", "field": "what", "align": "left"},
        {
            "name": "why",
            "label": "why (fault hint · largest deviations · ISO zone)",
            "field": "why",
            "align": "left",
            "style": "white-space: pre-line; min-width: 22rem",
        },
    ]
    rows = [
        {
            "id": e.id,
            "ts": stamp(e.ts),
            "kind": e.kind,
            "state": "raised" if e.active else "cleared",
            "severity": e.severity,
            "score": "-" if e.score is None else f"{number(e.score)} / {number(e.threshold or 0)}",
            "what": _detail(e),
            "why": "\n".join(event_why({"data": e.data})),
        }
        for e in events
    ]
    if not any(row["why"] for row in rows):  # a camera's events: no 'why' to show
        columns = columns[:-1]
    table = ui.table(columns=columns, rows=rows, row_key="id", pagination=10).classes("w-full")
    cards_when_narrow(table.props('flat bordered dense data-testid="device-events"'))
