"""The rollouts page in a real browser against a real server process: start a rollout from the form,
watch its stages and devices, pause, resume, a device failing its update halts it, abort."""

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from edgefleet.contracts import Channel, OtaState, encode, topic_for
from tests.dashboard.stack import PASSWORD, Device, ServerProcess, sign_up, wait_until
from tests.server import registry_kit

pytestmark = [pytest.mark.needs("chromium"), pytest.mark.slow]
_n = itertools.count(100)


def _ready(page: Any) -> None:
    page.wait_for_function("window.did_handshake === true")


def _input(page: Any, testid: str) -> Any:
    return page.locator(f"input[data-testid='{testid}'], [data-testid='{testid}'] input").first


def _report(device: Device, state: str, rollout_id: int, reason: str | None = None) -> None:
    message = OtaState(
        device_id=device.device_id,
        seq=next(device.seq),
        ts=datetime.now(UTC),
        state=state,  # type: ignore[arg-type]
        rollout_id=str(rollout_id),
        reason=reason,
    )
    info = device.client.publish(topic_for(device.device_id, Channel.OTA_STATE), encode(message), qos=1)
    info.wait_for_publish(10)


def test_rollout_page_start_watch_pause_halt_abort(server: ServerProcess, page: Any, artifacts: Path) -> None:
    n = next(_n)
    org = sign_up(server.url, f"owner{n}@rollouts{n}.example", f"Rollouts {n}")
    devices = []
    for i in range(4):
        device_id = f"r{n}-press-{i + 1}"
        devices.append(
            Device(server.url, server.mqtt_port, device_id, org.add_device(device_id, f"P{i}"), "vibration")
        )
    upload = org.api.post("/api/v1/models", files=registry_kit.files(registry_kit.card(version="2.0.0")))
    assert upload.status_code == 201, upload.text

    page.goto(f"{server.url}/login")
    page.fill("input[name=email]", org.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/")
    page.goto(f"{server.url}/rollouts")
    _ready(page)
    page.locator("[data-testid='no-rollouts']").wait_for()
    page.locator("[data-testid='new-rollout']").click()
    _input(page, "rollout-stages").fill("50, 100")
    _input(page, "rollout-gate").fill("5")
    _input(page, "rollout-gate").press("Tab")  # the number field commits its value on blur
    page.locator("[data-testid='create-rollout']").click()
    try:
        page.wait_for_url("**/rollouts/*")
    except PlaywrightTimeout as err:  # say why the form did not start it (a refusal is notified)
        notes = page.locator(".q-notification").all_inner_texts()
        raise AssertionError(f"Start rollout did not open the rollout; notifications: {notes}") from err
    _ready(page)
    rollout_id = int(page.url.rsplit("/", 1)[1])
    page.locator("[data-testid='rollout-state'][data-state='running']").wait_for()
    assert page.locator("[data-testid='stage-progress']").count() == 2
    assert page.locator("[data-testid='device-state']").count() == 4

    page.locator("[data-testid='rollout-pause']").click()
    page.locator("[data-testid='rollout-state'][data-state='paused']").wait_for()
    page.locator("[data-testid='rollout-resume']").click()
    page.locator("[data-testid='rollout-state'][data-state='running']").wait_for()

    def sent() -> list[str]:
        detail = org.api.get(f"/api/v1/rollouts/{rollout_id}").json()
        return [d["device_id"] for d in detail["device_states"] if d["state"] == "sent"]

    first = wait_until(sent, timeout=15)
    assert len(first) == 2  # stage 1 of 2: half of the 4 devices
    failing = next(d for d in devices if d.device_id == first[0])
    _report(failing, "FAILED", rollout_id, "self-test case 0: output differs by 37")
    page.locator("[data-testid='rollout-state'][data-state='halted']").wait_for(timeout=20_000)
    assert "self-test" in page.locator("[data-testid='rollout-reason']").inner_text()
    page.locator(f"[data-testid='device-state'][data-device='{failing.device_id}']").wait_for()
    page.screenshot(path=str(artifacts / "dashboard-rollout-halted.png"), full_page=True)

    page.locator("[data-testid='rollout-abort']").click()
    page.locator("[data-testid='abort-rollback']").click()
    page.locator("[data-testid='confirm-abort']").click()
    page.locator("[data-testid='rollout-state'][data-state='aborted']").wait_for()
    detail = org.api.get(f"/api/v1/rollouts/{rollout_id}").json()
    assert detail["state"] == "aborted" and detail["rollback"]
    assert {d["state"] for d in detail["device_states"] if d["stage"] == 1} == {"pending"}

    page.goto(f"{server.url}/rollouts")
    _ready(page)
    card = page.locator(f"[data-testid='rollout-card'][data-rollout-id='{rollout_id}']")
    card.wait_for()
    assert "aborted" in card.inner_text()
    for device in devices:
        device.close()
