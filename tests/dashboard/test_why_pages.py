"""The 'why' in a real browser (Debian chromium) against a real server process fed over MQTT: a fault
scoring 1,000x its threshold on a readable (log) score axis with the threshold marked, anomaly
explanations on the device page, the alarms page and the live log (as text, never HTML), a blind
device's warning on its page and its fleet card, and a live log that opens with the latest events."""

import itertools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.stack import PASSWORD, Device, Org, ServerProcess, sign_up, wait_until
from tests.dashboard.why_data import imbalance, report

pytestmark = [pytest.mark.needs("chromium"), pytest.mark.slow]
_n = itertools.count()
HINT = "imbalance: energy at the shaft frequency 15 Hz"
TOP = "ax band 10-20 Hz +8.3σ · ay rms +4.1σ · az kurtosis -2.2σ"
ISO = "ISO 10816 zone C (7.1 mm/s)"
SUMMARY = "anomaly: imbalance, ax band10-20 +8.3 sd, ISO zone C"  # what a device puts in `message`
HOSTILE = '<img id="xss" src="x" onerror="window.xss=1">loose <b>bolt</b>'

# The score chart's ECharts instance as the browser has it: axis, threshold mark, and where the
# normal scores, the threshold and the fault land on the canvas (pixels from the top).
CHART_PROBE = """(el) => {
  const chart = getElement(el).chart;
  const option = chart.getOption();
  const y = (v) => chart.convertToPixel({yAxisIndex: 0}, v);
  return {
    axis: option.yAxis[0], marks: option.series[0].markLine.data, height: el.clientHeight,
    normal: y(0.1), threshold: y(1.0), fault: y(1000.0),
  };
}"""


def _login(page: Any, server: ServerProcess, org: Org) -> None:
    page.goto(f"{server.url}/login")
    page.fill("input[name=email]", org.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/")
    page.wait_for_function("window.did_handshake === true")


def _goto(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_function("window.did_handshake === true")


def _device(server: ServerProcess, org: Org, device_id: str, name: str) -> Device:
    device = Device(server.url, server.mqtt_port, device_id, org.add_device(device_id, name), "vibration")
    device.status()
    return device


def _stored(org: Org, device_id: str, count: int) -> None:
    def enough() -> bool:
        items = org.api.get("/api/v1/events", params={"device_id": device_id, "limit": 200}).json()["items"]
        return len(items) >= count

    wait_until(enough, timeout=15)


def _commissioned(device: Device, status: str) -> None:
    device.event(
        "commissioning", active=status != "ok", severity="critical" if status == "blind" else "info",
        reason=status, commissioning=report(status), score=None, threshold=None,
    )  # fmt: skip


def test_fault_1000x_threshold_explanations_and_a_blind_device(
    page: Any, server: ServerProcess, artifacts: Path
) -> None:
    n = next(_n)
    org = sign_up(server.url, f"owner{n}@why{n}.example", f"Why plant {n}")
    pump = _device(server, org, f"w{n}-pump-1", "Pump 1")
    fan = _device(server, org, f"w{n}-fan-1", "Fan 1")
    now = datetime.now(UTC)
    for i in range(12):  # two hours of 0.1x the threshold, then the last half hour at 1,000x
        pump.telemetry(now - timedelta(minutes=120 - 10 * i), 0.1 if i < 9 else 1000.0, threshold=1.0)
    _commissioned(pump, "ok")
    pump.event(
        "anomaly", score=1000.0, threshold=1.0, severity="critical", explanation=imbalance(), message=SUMMARY
    )
    for i in range(3):
        fan.telemetry(now - timedelta(minutes=30 - 10 * i), 0.5, commissioning="blind", fault_visibility=0.12)
    _commissioned(fan, "blind")
    _stored(org, pump.device_id, 2)
    _stored(org, fan.device_id, 1)

    _login(page, server, org)
    flag = page.locator(f"[data-device-id='{fan.device_id}'] [data-testid='commissioning-flag']")
    flag.wait_for()
    assert "BLIND" in flag.inner_text() and "cannot see its trained faults" in flag.inner_text()
    assert (
        page.locator(f"[data-device-id='{pump.device_id}'] [data-testid='commissioning-flag']").count() == 0
    )

    # 1. the fault does not flatten the normal scores: a log axis, the threshold marked, all three apart
    _goto(page, f"{server.url}/devices/{pump.device_id}")
    chart = page.locator("[data-testid='score-chart']")
    chart.locator("canvas").wait_for()
    page.wait_for_function(
        "(el) => getElement(el).chart?.getOption()?.series?.length === 3", arg=chart.element_handle()
    )
    probe = chart.evaluate(CHART_PROBE)
    assert probe["axis"]["type"] == "log" and (probe["axis"]["min"], probe["axis"]["max"]) == (0.1, 10_000)
    assert [m["yAxis"] for m in probe["marks"]] == [1.0]
    assert 0 < probe["fault"] < probe["threshold"] < probe["normal"] < probe["height"]
    assert probe["threshold"] - probe["fault"] > 60 and probe["normal"] - probe["threshold"] > 30
    # 2. the anomaly says why, in plain words; 3. an ok commissioning is one quiet line
    events = page.locator("[data-testid='device-events']")
    events.locator(f"text={HINT}").wait_for()
    assert TOP in events.inner_text() and ISO in events.inner_text() and "1,000 / 1" in events.inner_text()
    assert SUMMARY not in events.inner_text()  # the device's one-line summary of the same, not repeated
    quiet = page.locator("[data-testid='commissioning-ok']")
    assert "threshold 0.84 (model card 1)" in quiet.inner_text()
    assert page.locator("[data-testid='commissioning-warning']").count() == 0
    time.sleep(1)  # let the chart draw before the screenshot
    page.screenshot(path=str(artifacts / "dashboard-why-device.png"), full_page=True)

    # 3. a blind device cannot be missed, with its figures
    _goto(page, f"{server.url}/devices/{fan.device_id}")
    warning = page.locator("[data-testid='commissioning-warning']")
    warning.wait_for()
    text = warning.inner_text()
    assert "This device can no longer see the faults its model was trained on" in text
    assert "re-commission" in text.lower() and "retrain" in text
    assert "Fault visibility 12%" in text and "(under the card's own baseline: 96%)" in text
    assert "3.1x" in text and "6.2x" in text and "ax_kurtosis" in text
    warning.screenshot(path=str(artifacts / "dashboard-blind-warning.png"))

    # 2. the alarms page says why each alarm was raised
    _goto(page, f"{server.url}/alarms")
    anomaly = page.locator("[data-alarm-id]").filter(has_text=pump.device_id).first
    anomaly.locator("[data-testid='explanation']").wait_for()
    assert all(part in anomaly.inner_text() for part in (HINT, TOP, ISO))
    blind = page.locator("[data-alarm-id]").filter(has_text=fan.device_id).first
    assert "blind to its faults: threshold 4.2 (model card 1)" in blind.inner_text()
    for device in (pump, fan):
        device.close()


def test_live_log_opens_with_the_latest_events_and_shows_why_as_text(
    page: Any, server: ServerProcess, artifacts: Path
) -> None:
    n = next(_n)
    org = sign_up(server.url, f"owner{n}@live{n}.example", f"Live plant {n}")
    press = _device(server, org, f"l{n}-press-1", "Press 1")
    seqs = [press.event("anomaly", active=i % 2 == 0, score=0.5 + i / 100) for i in range(59)]
    seqs.append(press.event("anomaly", score=1000.0, explanation=imbalance(HOSTILE), message=HOSTILE))
    _stored(org, press.device_id, 60)

    _login(page, server, org)
    _goto(page, f"{server.url}/live")
    rows = page.locator("[data-testid='live-log'] [data-event-id]")
    wait_until(lambda: rows.count() == 50)  # the last 50 from the database, newest first
    assert [int(s) for s in rows.evaluate_all("rs => rs.map(r => r.dataset.seq)")] == seqs[::-1][:50]
    newest = rows.first.inner_text()
    assert f"imbalance: {HOSTILE}" in newest and TOP in newest and ISO in newest  # the tags as text
    assert "score 1,000 (threshold 1)" in newest.splitlines()[0]  # the lines below say what `message` would
    assert page.locator("#xss").count() == 0 and page.evaluate("window.xss") is None

    time.sleep(0.5)  # the page's subscription is made during its load; give the socket a moment
    live = press.event("anomaly", score=2.0, explanation=imbalance())
    page.locator(f"[data-seq='{live}']").wait_for(timeout=5_000)
    ids = rows.evaluate_all("rs => rs.map(r => r.dataset.eventId)")
    assert len(ids) == 51 and len(set(ids)) == 51  # appended once, nothing loaded twice
    assert int(rows.first.get_attribute("data-seq")) == live and HINT in rows.first.inner_text()
    assert rows.first.get_attribute("href") == f"/devices/{press.device_id}"
    page.screenshot(path=str(artifacts / "dashboard-why-live.png"))
    press.close()
