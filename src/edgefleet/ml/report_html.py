"""The human-readable report: score histograms with the threshold line, and the ROC curves."""

import io
from typing import Any

import numpy as np
from numpy.typing import NDArray

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}
table{border-collapse:collapse}td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left}
.bad{color:#b00}.ok{color:#070}</style></head><body>
<h1>{{ title }}</h1>
<p>{{ description }}</p>
<h2>Summary</h2>
<table>{% for k, v in summary %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}</table>
<h2>Anomaly score on test windows (int8 model, TFLite Micro)</h2>
{{ histogram | safe }}
<h2>ROC</h2>
{{ roc | safe }}
<h2>MCU targets</h2>
<table><tr><th>target</th><th>fits</th><th>est. latency (ms)</th><th>why not</th></tr>
{% for name, t in targets %}<tr><td>{{ name }}</td>
<td class="{{ 'ok' if t.fits else 'bad' }}">{{ t.fits }}</td>
<td>{{ t.est_latency_ms }}</td><td>{{ t.why_not or '' }}</td></tr>{% endfor %}</table>
<p><small>{{ cost_source }}</small></p>
<h2>Full report</h2><pre>{{ report_json }}</pre>
</body></html>
"""


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.find("<svg") :]


def _fmt(value: float | None) -> str:
    return "n/a (no anomaly windows)" if value is None else f"{value:.4f}"


def render(
    report: dict[str, Any],
    normal: NDArray[np.floating],
    anomaly: NDArray[np.floating],
    rocs: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]],
    cost_source: str,
) -> str:
    import json

    import jinja2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threshold = float(report["threshold"]["value"])
    fig, ax = plt.subplots(figsize=(8, 3.5))
    scores = np.concatenate([normal, anomaly])  # the anomaly windows may be none (field retraining)
    top = max(float(np.max(scores)), threshold)
    bottom = max(1e-6, float(np.min(scores)))
    bins = np.logspace(np.log10(bottom), np.log10(top * 1.01), 60).tolist()
    ax.hist(normal, bins=bins, alpha=0.6, label=f"normal ({len(normal)})")
    ax.hist(anomaly, bins=bins, alpha=0.6, label=f"anomaly ({len(anomaly)})")
    ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.4g}")
    ax.set_xscale("log")
    ax.set_xlabel("reconstruction MSE (standardized features)")
    ax.set_ylabel("windows")
    ax.legend()
    histogram = _svg(fig)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for name, (fpr, tpr) in rocs.items():
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], color="#aaa", linestyle=":")
    ax.set_xlabel("false-alarm rate")
    ax.set_ylabel("recall")
    ax.legend(loc="lower right")
    roc_svg = _svg(fig)
    plt.close(fig)
    summary = [
        ("int8 AUC", _fmt(report["int8"]["auc"])),
        ("float AUC", _fmt(report["float"]["auc"])),
        ("K-means baseline AUC", _fmt(report["baseline_kmeans"]["auc"])),
        ("threshold", f"{threshold:.5g} ({report['threshold']['policy']})"),
        ("recall", _fmt(report["int8"]["recall"])),
        ("precision", _fmt(report["int8"]["precision"])),
        ("false-alarm rate", _fmt(report["int8"]["false_alarm_rate"])),
        ("flash bytes", report["model"]["flash_bytes"]),
        ("arena bytes", report["model"]["arena_bytes"]),
        ("ops", ", ".join(report["model"]["ops"])),
        ("windows / rejected", f"{report['data']['windows']} / {report['data']['rejected']}"),
    ]
    env = jinja2.Environment(autoescape=True)
    return env.from_string(_TEMPLATE).render(
        title=f"edgefleet model report: {report['model']['id']} {report['model']['version']}",
        description=report["model"].get("description") or "",
        summary=summary,
        histogram=histogram,
        roc=roc_svg,
        targets=list(report["targets"].items()),
        cost_source=cost_source,
        report_json=json.dumps(report, indent=2),
    )
