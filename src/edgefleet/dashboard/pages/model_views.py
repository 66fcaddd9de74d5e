"""Pieces of the Models page: the model card view and the comparison of two versions."""

from typing import Any

from nicegui import ui

from edgefleet.dashboard.layout import cards_when_narrow, stamp
from edgefleet.server.schemas import FieldComparison, ModelComparison, ModelDetail, ModelPublic

KEY_METRICS = ("int8_auc", "recall", "false_alarm_rate", "int8.accuracy", "precision")


def fmt(value: Any, limit: int = 80) -> str:
    """A short human form of a card value."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        text = ", ".join(fmt(v, limit) for v in value)
    elif isinstance(value, dict):
        text = ", ".join(f"{k} {fmt(v, limit)}" for k, v in value.items())
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def key_metrics(model: ModelPublic) -> str:
    shown = [name for name in KEY_METRICS if name in model.metrics] or sorted(model.metrics)[:3]
    return " · ".join(f"{name} {fmt(model.metrics[name])}" for name in shown) or "no metrics"


def _facts(rows: list[tuple[str, Any]]) -> None:
    with ui.grid(columns="minmax(0, max-content) minmax(0, 1fr)").classes("gap-x-4 gap-y-1 text-sm w-full"):
        for label, value in rows:
            ui.label(label).classes("ef-muted")
            ui.label(fmt(value, 160)).classes("ef-mono break-all")


def card_view(model: ModelDetail) -> None:
    """Everything the model card and the registry say about one version."""
    card = model.card
    features = card.get("feature_spec") or {}
    threshold = card.get("threshold") or {}
    with ui.card().classes("w-full p-4 gap-3").props('data-testid="model-detail"'):
        with ui.row().classes("items-center gap-2"):
            ui.label(f"{model.model_id} {model.version}").classes("text-lg font-semibold")
            if model.is_default:
                ui.badge(f"default for {model.device_kind}", color="positive")
        if card.get("description"):
            ui.label(card["description"]).classes("ef-muted")
        _facts([
            ("task", model.task),
            ("device kind", model.device_kind),
            ("uploaded", stamp(model.created_at)),
            ("package", f"{model.size} bytes, sha256 {model.sha256}"),
            ("signature", f"Ed25519, key {model.key_id}"),
            ("card sha256", model.card_sha256),
            ("min runtime", model.min_runtime_version),
            ("input", card.get("input")),
            ("output", card.get("output")),
            ("threshold", threshold),
            ("flash / arena", f"{card.get('flash_bytes')} / {card.get('arena_bytes')} bytes"),
            ("ops", card.get("ops")),
            ("features", _features(features)),
            ("window", _window(features)),
            ("score stats", card.get("score_stats")),
            ("lineage", {k: v for k, v in model.lineage.items() if v}),
            ("self-test", f"{len(model.self_test)} cases"),
        ])  # fmt: skip
        if model.metrics:
            ui.label("Metrics").classes("font-semibold mt-2")
            _facts(sorted(model.metrics.items()))


def _features(spec: dict[str, Any]) -> str | None:
    return f"{len(spec.get('names', []))}: {fmt(spec.get('names'))}" if spec else None


def _window(spec: dict[str, Any]) -> str | None:
    if not spec:
        return None
    return f"{spec.get('window')} samples (hop {spec.get('hop')}) at {spec.get('sample_rate_hz')} Hz"


def _rows(fields: list[FieldComparison], only_changed: bool) -> list[dict[str, str]]:
    return [
        {
            "name": f.name,
            "a": fmt(f.a),
            "b": fmt(f.b),
            "delta": "-" if f.delta is None else f"{f.delta:+.4g}",
            "changed": "changed" if f.changed else "",
        }
        for f in fields
        if f.changed or not only_changed
    ]


def comparison_view(result: ModelComparison) -> None:
    columns = [
        {"name": "name", "label": "", "field": "name", "align": "left"},
        {"name": "a", "label": f"A: {result.a.model_id} {result.a.version}", "field": "a", "align": "left"},
        {"name": "b", "label": f"B: {result.b.model_id} {result.b.version}", "field": "b", "align": "left"},
        {"name": "delta", "label": "B - A", "field": "delta", "align": "right"},
        {"name": "changed", "label": "", "field": "changed", "align": "left"},
    ]
    with ui.card().classes("w-full p-4 gap-2").props('data-testid="compare-result"'):
        ui.label("Metrics").classes("font-semibold")
        metrics = ui.table(columns=columns, rows=_rows(result.metrics, False), row_key="name").classes(
            "w-full"
        )
        cards_when_narrow(metrics.props('dense flat data-testid="compare-metrics"'))
        changed = _rows(result.card, True)
        ui.label(f"Model card: {len(changed)} of {len(result.card)} fields differ").classes("font-semibold")
        if changed:
            fields = ui.table(columns=columns, rows=changed, row_key="name").classes("w-full")
            cards_when_narrow(fields.props('dense flat data-testid="compare-card"'))
