"""Classification metrics and the human-readable report of train-vision."""

from typing import Any

import numpy as np
from numpy.typing import NDArray


def classification_metrics(
    y: NDArray[np.int64], person_prob: NDArray[np.floating], threshold: float
) -> dict[str, Any]:
    """Accuracy, precision, recall, F1 at `threshold`; confusion [[tn, fp], [fn, tp]] (person = positive)."""
    predicted = person_prob >= threshold
    actual = y == 1
    tp = int(np.sum(predicted & actual))
    tn = int(np.sum(~predicted & ~actual))
    fp = int(np.sum(predicted & ~actual))
    fn = int(np.sum(~predicted & actual))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": round((tp + tn) / max(len(y), 1), 4),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


_TEMPLATE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{{ model_id }}: person detection report</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; max-width: 52rem }
table { border-collapse: collapse; margin: 1rem 0 }
td, th { border: 1px solid #ccc; padding: .3rem .6rem; text-align: left }
</style></head><body>
<h1>{{ model_id }}: person / no-person</h1>
<h2>Held-out test set</h2>
<table><tr><th></th><th>int8 (TFLite Micro)</th><th>float</th></tr>
{% for k in ["accuracy", "precision", "recall", "f1"] %}
<tr><th>{{ k }}</th><td>{{ r.int8[k] }}</td><td>{{ r.float[k] }}</td></tr>{% endfor %}
</table>
<h2>Confusion matrix (int8, threshold {{ r.threshold.value }})</h2>
<table><tr><th></th><th>predicted no_person</th><th>predicted person</th></tr>
{% for label, row in [("no_person", cm[0]), ("person", cm[1])] %}
<tr><th>{{ label }}</th><td>{{ row[0] }}</td><td>{{ row[1] }}</td></tr>{% endfor %}
</table>
<h2>Model</h2>
<table>{% for k in ["flash_bytes", "arena_bytes", "macs", "params", "ops"] %}
<tr><th>{{ k }}</th><td>{{ r.model[k] }}</td></tr>{% endfor %}</table>
<h2>Targets</h2>
<table><tr><th>target</th><th>fits</th><th>est. latency (ms)</th><th>why not</th></tr>
{% for name, t in r.targets.items() %}
<tr><td>{{ name }}</td><td>{{ "yes" if t.fits else "no" }}</td><td>{{ t.est_latency_ms }}</td>
<td>{{ t.why_not or "" }}</td></tr>{% endfor %}</table>
<h2>Data</h2>
<table>{% for k in ["images", "per_class", "rejected", "split"] %}
<tr><th>{{ k }}</th><td>{{ r.data[k] }}</td></tr>{% endfor %}</table>
</body></html>
"""


def render_html(model_id: str, report: dict[str, Any]) -> str:
    import jinja2

    template = jinja2.Environment(autoescape=True).from_string(_TEMPLATE)
    return template.render(model_id=model_id, r=report, cm=report["int8"]["confusion_matrix"])
