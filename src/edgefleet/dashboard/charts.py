"""Chart definitions as plain data: inline SVG sparklines and ECharts options (axes with units).

Pure functions of the data, so they are tested without a browser. What devices, users and model cards
wrote (device ids, kinds, model versions) goes into data fields (`name`, categories, series names),
never into a `formatter` template, and no option key starts with ":" (NiceGUI evaluates those as
JavaScript); ECharts escapes names in its HTML tooltips."""

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

from edgefleet.dashboard.queries import AlarmSpan
from edgefleet.server.services.drift_queries import VersionSeries

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"]


def sparkline_svg(values: Sequence[float], width: int = 160, height: int = 36, label: str = "") -> str:
    """A small line of the last values; flat and grey when there is nothing to draw."""
    title = f"<title>{escape(label)}</title>" if label else ""
    if len(values) < 2:
        return (
            f"{_spark_open(width, height)}{title}"
            f'<line x1="0" y1="{height - 2}" x2="{width}" y2="{height - 2}" stroke="#94a3b8"/></svg>'
        )
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    step = width / (len(values) - 1)
    points = " ".join(
        f"{i * step:.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}" for i, v in enumerate(values)
    )
    return (
        f"{_spark_open(width, height)}{title}"
        f'<polyline fill="none" stroke="#2563eb" stroke-width="1.5" vector-effect="non-scaling-stroke" '
        f'points="{points}"/></svg>'
    )


def _spark_open(width: int, height: int) -> str:
    """The svg tag: drawn in a `width` x `height` box, stretched to the width of its card."""
    return (
        f'<svg class="ef-spark" viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        f'style="width:100%;max-width:{2 * width}px;height:{height}px" role="img">'
    )


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _time_axis() -> dict[str, Any]:
    # hideOverlap: on a narrow chart ECharts drops the labels that would collide instead of
    # drawing them over each other, so the axis thins its labels to the width it has. It works within
    # one axis only: the margin keeps the first time label below the value axis's lowest label, whose
    # lower half hangs below the axis line (seen on a phone: '0.1' over '17:15').
    return {
        "type": "time",
        "name": "time (UTC)",
        "nameLocation": "middle",
        "nameGap": 32,
        "axisLabel": {"hideOverlap": True, "margin": 14},
    }


def _legend(**extra: Any) -> dict[str, Any]:
    """One line at the bottom; entries that do not fit scroll instead of wrapping onto the axis."""
    return {"bottom": 0, "type": "scroll", **extra}


def _base(title: str) -> dict[str, Any]:
    return {
        "title": {"text": title, "left": "center", "textStyle": {"fontSize": 13}},
        "tooltip": {"trigger": "axis", "confine": True},
        "grid": {"left": 64, "right": 24, "top": 44, "bottom": 52},
        "color": PALETTE,
        "animation": False,
        "aria": {"enabled": True},  # a text description of the chart for screen readers
    }


LOG_SPAN = 20.0
"""The score axis turns logarithmic when the scores and the threshold span more than this ratio."""


def _decade(value: float, up: bool) -> float:
    exponent = math.log10(value)
    return float(10 ** (math.ceil(exponent) if up else math.floor(exponent)))


def score_axis(values: Sequence[float], threshold: float | None) -> dict[str, Any]:
    """A linear axis while scores stay within LOG_SPAN of each other and the threshold; past that
    (a fault scoring 1,000x the threshold) a log axis from the decade below the smallest to the decade
    above the largest, so normal scores, the threshold and the fault all stay readable."""
    axis: dict[str, Any] = {"name": "score (reconstruction error)", "nameGap": 48, "nameLocation": "middle"}
    positive = [v for v in (*values, *([threshold] if threshold else [])) if v > 0]
    if not positive or max(positive) / min(positive) <= LOG_SPAN:
        return {**axis, "type": "value", "scale": True}
    lo, hi = _decade(min(positive), up=False), _decade(max(positive), up=True)
    return {
        **axis,
        "type": "log",
        "logBase": 10,
        "min": lo,
        "max": hi if hi > lo else lo * 10,
        "name": "score (reconstruction error, log scale)",
    }


def score_chart(
    points: Sequence[tuple[datetime, float | None, float | None, float | None]],
    spans: Sequence[AlarmSpan],
    now: datetime,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Anomaly score (p95 and max per telemetry interval) with the threshold (the line the telemetry
    reports, stepping when it changes, and a marked line at the latest) and alarm spans shaded.

    `threshold` is the one in force when the telemetry carries none (from commissioning or events)."""
    reported = [(t, v) for t, _, _, v in points if v is not None]
    latest = reported[-1][1] if reported else threshold
    if not reported and threshold is not None and points:
        reported = [(points[0][0], threshold), (points[-1][0], threshold)]
    values = [v for _, a, b, _ in points for v in (a, b) if v is not None]
    axis = score_axis(values, latest)
    floor = axis.get("min", 0.0)

    def shown(v: float) -> float:  # a log axis has no place for 0: such a score sits on its floor
        return v if axis["type"] != "log" or v > 0 else floor

    p95 = [[_ms(t), shown(v)] for t, v, _, _ in points if v is not None]
    peak = [[_ms(t), shown(v)] for t, _, v, _ in points if v is not None]
    areas = [
        [
            {"xAxis": _ms(s.start), "name": f"{s.kind} alarm"},
            {"xAxis": _ms(s.end or now)},
        ]
        for s in spans
    ]
    red = "#dc2626"
    mark_line: dict[str, Any] = {
        "silent": True,
        "symbol": "none",
        "lineStyle": {"type": "dashed", "color": red},
        "label": {"position": "insideEndTop", "color": red},
        "data": []
        if latest is None
        else [{"yAxis": latest, "name": "threshold", "label": {"formatter": f"threshold {latest:.3g}"}}],
    }
    option = _base("Anomaly score")
    option.update(
        legend=_legend(data=["score p95", "score max", "threshold"]),
        xAxis=_time_axis(),
        yAxis=axis,
        series=[
            {
                "name": "score p95",
                "type": "line",
                "showSymbol": len(p95) < 2,
                "data": p95,
                "markArea": {
                    "silent": True,
                    "itemStyle": {"color": "rgba(220,38,38,0.12)"},
                    # from the span's right edge inwards: an alarm still open ends at the chart's edge
                    "label": {"position": "insideTopRight", "color": red},
                    "data": areas,
                },
                "markLine": mark_line,
            },
            {
                "name": "score max",
                "type": "line",
                "showSymbol": False,
                "data": peak,
                "lineStyle": {"width": 1, "opacity": 0.6},
            },
            {
                "name": "threshold",
                "type": "line",
                "step": "end",
                "showSymbol": False,
                "data": [[_ms(t), v] for t, v in reported],
                "lineStyle": {"type": "dashed", "color": red},
                "itemStyle": {"color": red},
            },
        ],
    )
    option["grid"]["bottom"] = 64
    return option


def series_chart(
    title: str, unit: str, series: Mapping[str, Sequence[tuple[datetime, float]]]
) -> dict[str, Any]:
    """Lines over time, one per name, on one value axis with a unit."""
    option = _base(title)
    option.update(
        legend=_legend() if len(series) > 1 else {"show": False},
        xAxis=_time_axis(),
        yAxis={"type": "value", "name": unit, "nameLocation": "middle", "nameGap": 48},
        series=[
            {"name": name, "type": "line", "showSymbol": False, "data": [[_ms(t), v] for t, v in values]}
            for name, values in series.items()
        ],
    )
    return option


def stacked_bars(
    title: str,
    unit: str,
    buckets: Sequence[dict[str, Any]],
    key: str,
    time_key: str = "bucket",
    *,
    span: tuple[datetime, datetime] | None = None,
    total: str | None = None,
) -> dict[str, Any]:
    """Counts per time bucket, one stacked bar series per `key` value; `total` names a line drawn over
    the bars instead of being stacked; `span` fixes the time axis to the chosen range."""
    names = sorted({str(b[key]) for b in buckets})
    option = _base(title)
    axis = _time_axis()
    if span:
        axis.update(min=_ms(span[0]), max=_ms(span[1]))
    option.update(
        legend=_legend(),
        xAxis=axis,
        yAxis={"type": "value", "name": unit, "nameLocation": "middle", "nameGap": 40, "minInterval": 1},
        series=[
            {
                "name": name,
                "type": "line" if name == total else "bar",
                **({} if name == total else {"stack": "total", "barMaxWidth": 24}),
                "data": [[_ms(b[time_key]), b["count"]] for b in buckets if str(b[key]) == name],
            }
            for name in names
        ],
    )
    option["grid"]["bottom"] = 64
    return option


def category_bars(title: str, unit: str, values: Sequence[tuple[str, float]]) -> dict[str, Any]:
    option = _base(title)
    option.update(
        xAxis={
            "type": "category",
            "data": [k for k, _ in values],
            "axisLabel": {"rotate": 30, "hideOverlap": True},
        },
        yAxis={"type": "value", "name": unit, "nameLocation": "middle", "nameGap": 48},
        series=[{"type": "bar", "data": [round(v, 6) for _, v in values]}],
    )
    option["grid"]["bottom"] = 72
    return option


# --- drift (issue 8) ---------------------------------------------------------------------------
def _version_marks(series: Sequence[VersionSeries]) -> list[dict[str, Any]]:
    """Vertical lines where the device started on another model version."""
    return [
        {
            "xAxis": _ms(s.points[0].ts),
            "name": f"→ {s.model_version}",
            "label": {"formatter": "{b}"},  # the name, as data: no text of a card in a template
        }
        for s in series[1:]
        if s.points
    ]


def drift_chart(series: Sequence[VersionSeries]) -> dict[str, Any]:
    """The device's drift statistic over time, one line per model version, with the limit line."""
    option = _base("Drift by model version")
    limit = series[0].drift_limit if series else None
    lines: list[dict[str, Any]] = [
        {
            "name": f"drift {s.model_version}",
            "type": "line",
            "showSymbol": False,
            "connectNulls": False,
            "data": [[_ms(p.ts), p.drift] for p in s.points if p.drift is not None],
        }
        for s in series
    ]
    marks: list[dict[str, Any]] = _version_marks(series)
    if limit is not None:
        label = {"formatter": f"limit {limit:g} σ", "position": "insideEndTop"}
        marks.append({"yAxis": limit, "name": "limit", "label": label})
    if lines:
        lines[0]["markLine"] = {
            "silent": True,
            "symbol": "none",
            "lineStyle": {"type": "dashed", "color": "#dc2626"},
            "data": marks,
        }
    option.update(
        legend=_legend(),
        xAxis=_time_axis(),
        yAxis={
            "type": "value",
            "name": "drift statistic (σ)",
            "nameLocation": "middle",
            "nameGap": 48,
            "min": 0,
        },
        series=lines,
    )
    option["grid"]["bottom"] = 64
    return option


def drift_score_chart(series: Sequence[VersionSeries]) -> dict[str, Any]:
    """Score p50/p95 per model version against the model card's p50/p95 (dashed) and the p95 limit."""
    option = _base("Score against the model card")
    lines: list[dict[str, Any]] = []
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        span = [_ms(s.points[0].ts), _ms(s.points[-1].ts)] if s.points else []
        line = {"type": "line", "showSymbol": False, "itemStyle": {"color": color}}
        lines.append(
            {
                **line,
                "name": f"p95 {s.model_version}",
                "data": [[_ms(p.ts), p.score_p95] for p in s.points if p.score_p95 is not None],
            }
        )
        lines.append(
            {
                **line,
                "name": f"p50 {s.model_version}",
                "data": [[_ms(p.ts), p.score_p50] for p in s.points if p.score_p50 is not None],
                "lineStyle": {"width": 1, "opacity": 0.7},
            }
        )
        for name, value, style in (
            (f"card p95 {s.model_version}", s.card_p95, "dashed"),
            (f"card p50 {s.model_version}", s.card_p50, "dashed"),
            (f"p95 limit {s.model_version}", s.p95_limit, "dotted"),
        ):
            if value is not None and span:
                lines.append(
                    {
                        **line,
                        "name": name,
                        "data": [[t, value] for t in span],
                        "lineStyle": {"type": style, "width": 1},
                    }
                )
    option.update(
        legend=_legend(),
        xAxis=_time_axis(),
        yAxis={
            "type": "value",
            "name": "score (reconstruction error)",
            "nameLocation": "middle",
            "nameGap": 48,
            "scale": True,
        },
        series=lines,
    )
    option["grid"]["bottom"] = 64
    return option


# --- cameras ----------------------------------------------------------------------------------
def presence_chart(
    changes: Sequence[tuple[datetime, int]], span: tuple[datetime, datetime], before: int = 0
) -> dict[str, Any]:
    """Persons present over time from a camera's person events: each (time, count) holds until the
    next (a cleared event says 0), filled so presence reads as a timeline; `before` is the count in
    force at the start of the span."""
    start, end = span
    points = [[_ms(start), before], *([_ms(t), n] for t, n in changes if start <= t <= end)]
    points.append([_ms(end), points[-1][1]])
    option = _base("Presence")
    axis = _time_axis()
    axis.update(min=_ms(start), max=_ms(end))
    option.update(
        legend={"show": False},
        xAxis=axis,
        yAxis={
            "type": "value",
            "name": "persons present",
            "nameLocation": "middle",
            "nameGap": 40,
            "minInterval": 1,
            "min": 0,
        },
        series=[
            {
                "name": "persons present",
                "type": "line",
                "step": "end",
                "showSymbol": False,
                "areaStyle": {"opacity": 0.3},
                "data": points,
            }
        ],
    )
    option["grid"]["bottom"] = 44
    return option
