"""Chart definitions: axes carry units, thresholds and alarm spans are drawn, totals are not stacked."""

from datetime import UTC, datetime, timedelta

from edgefleet.dashboard.charts import score_chart, sparkline_svg, stacked_bars
from edgefleet.dashboard.layout import ago
from edgefleet.dashboard.queries import AlarmSpan

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)


def test_sparkline_scales_values_into_the_box_and_is_flat_without_data() -> None:
    svg = sparkline_svg([1.0, 3.0, 2.0], width=100, height=20)
    points = svg.split('points="')[1].split('"')[0].split()
    ys = [float(p.split(",")[1]) for p in points]
    assert ys[1] == 2.0 and ys[0] == 18.0  # the highest value at the top, the lowest at the bottom
    assert float(points[-1].split(",")[0]) == 100.0
    assert "polyline" not in sparkline_svg([5.0])
    assert "&lt;b&gt;" in sparkline_svg([], label="<b>")  # labels are escaped


def test_score_chart_has_threshold_line_alarm_spans_and_units() -> None:
    points = [(T0 + timedelta(minutes=i), 0.5 + i, 0.7 + i, 1.0) for i in range(3)]
    spans = [AlarmSpan(T0, None, "anomaly", "warning")]
    option = score_chart(points, spans, now=T0 + timedelta(hours=1))
    series = {s["name"]: s for s in option["series"]}
    assert [v for _, v in series["threshold"]["data"]] == [1.0, 1.0, 1.0]
    area = series["score p95"]["markArea"]["data"][0]
    assert area[0]["xAxis"] == int(T0.timestamp() * 1000)
    assert area[1]["xAxis"] == int((T0 + timedelta(hours=1)).timestamp() * 1000)  # still open: to now
    assert "score" in option["yAxis"]["name"] and "UTC" in option["xAxis"]["name"]


def test_stacked_bars_stack_per_key_but_draw_the_total_as_a_line() -> None:
    buckets = [
        {"bucket": T0, "key": "cam-1", "count": 2},
        {"bucket": T0, "key": "cam-2", "count": 3},
        {"bucket": T0, "key": "all cameras", "count": 5},
    ]
    option = stacked_bars("x", "person events / h", buckets, "key", total="all cameras", span=(T0, T0))
    kinds = {s["name"]: (s["type"], s.get("stack")) for s in option["series"]}
    assert kinds == {"all cameras": ("line", None), "cam-1": ("bar", "total"), "cam-2": ("bar", "total")}
    assert option["yAxis"]["name"] == "person events / h"
    assert option["xAxis"]["min"] == option["xAxis"]["max"] == int(T0.timestamp() * 1000)


def test_ago_reads_like_a_person_would_say_it() -> None:
    assert ago(None) == "never"
    assert ago(T0 - timedelta(seconds=5), now=T0) == "5 s ago"
    assert ago(T0 - timedelta(minutes=5), now=T0) == "5 min ago"
    assert ago(T0 - timedelta(hours=5), now=T0) == "5 h ago"
    assert ago(T0 - timedelta(days=3), now=T0) == "3 d ago"
