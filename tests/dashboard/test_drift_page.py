"""The device page's drift section in a real browser against a real server process: a device drifts on
its second model version over MQTT; the page says "drifting" and charts drift per version."""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edgefleet.contracts import Channel, Telemetry
from tests.dashboard.stack import PASSWORD, Device, ServerProcess, sign_up, wait_until

pytestmark = [pytest.mark.needs("chromium"), pytest.mark.slow]


def _interval(device: Device, seq: int, ts: datetime, drift: float, version: str) -> None:
    message = Telemetry(
        device_id=device.device_id, seq=seq, ts=ts, mode="running", uptime_s=60.0 * seq, interval_s=60.0,
        windows=90, score_p50=0.3, score_p95=0.5, drift=drift, model_id="demo-ae", model_version=version,
    )  # fmt: skip
    device._send(Channel.TELEMETRY, message)


def test_device_page_shows_drift_per_model_version(page: Any, server: ServerProcess, artifacts: Path) -> None:
    org = sign_up(server.url, "owner@drift-plant.example", "Drift plant")
    device = Device(
        server.url, server.mqtt_port, "drift-pump-1", org.add_device("drift-pump-1", "Pump 1"), "vibration"
    )
    device.status()
    start = datetime.now(UTC) - timedelta(minutes=30)
    for i in range(10):  # 1.0.0 within limits, then 1.1.0 drifting past the limit (1.5 σ)
        version, drift = ("1.0.0", 0.3 + 0.02 * i) if i < 5 else ("1.1.0", 2.4)
        _interval(device, 100 + i, start + timedelta(minutes=2 * i), drift, version)
    summary = wait_until(
        lambda: org.api.get("/api/v1/drift", params={"state": "drifting"}).json(), timeout=15
    )
    assert [(d["device_id"], d["model_version"], d["reason"]) for d in summary] == [
        ("drift-pump-1", "1.1.0", "drift")
    ]
    alarms = org.api.get("/api/v1/alarms", params={"device_id": "drift-pump-1"}).json()
    assert [a["kind"] for a in alarms] == ["drift"]

    page.goto(f"{server.url}/login")
    page.fill("input[name=email]", org.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_function("window.did_handshake === true")
    page.goto(f"{server.url}/devices/drift-pump-1")
    page.wait_for_function("window.did_handshake === true")
    state = page.locator("[data-testid='drift-state']")
    state.wait_for()
    assert state.inner_text().strip() == "drifting"
    section = page.locator("[data-testid='drift-section']")
    assert "out of limit (drift)" in section.inner_text() and "1.1.0" in section.inner_text()
    page.locator("[data-testid='drift-chart'] canvas").first.wait_for()
    time.sleep(1)  # let the charts draw before the screenshot
    section.screenshot(path=str(artifacts / "dashboard-drift.png"))
    device.close()
