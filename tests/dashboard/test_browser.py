"""The dashboard in a real browser (Debian chromium via Playwright) against a real server process:
sign-up, login, device cards, device page, live log latency, alarms, add device + QR, logout,
and another organization seeing none of it."""

import base64
import io
import itertools
import re
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from edgefleet.contracts.provisioning import decode_payload
from edgefleet.edge.provisioning.qr import scan_frame
from tests.dashboard.stack import PASSWORD, Device, Org, ServerProcess, sign_up, wait_until

pytestmark = [pytest.mark.needs("chromium"), pytest.mark.slow]
_n = itertools.count()
TO_LOGIN = re.compile(r".*/login\?next=.+")


def _ready(page: Any) -> None:
    """Wait for the page's WebSocket: before it is up, clicks on UI elements have no handler yet."""
    page.wait_for_function("window.did_handshake === true")


def _input(page: Any, testid: str) -> Any:
    """Quasar puts extra attributes on the native input (or its wrapper): find it either way."""
    return page.locator(f"input[data-testid='{testid}'], [data-testid='{testid}'] input").first


def _goto(page: Any, url: str) -> None:
    page.goto(url)
    _ready(page)


def _login(page: Any, server: ServerProcess, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{server.url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def _org_with_devices(server: ServerProcess, count: int = 2) -> tuple[Org, list[Device]]:
    n = next(_n)
    org = sign_up(server.url, f"owner{n}@plant{n}.example", f"Plant {n}")
    devices = []
    for i in range(count):
        device_id = f"p{n}-press-{i + 1}"
        token = org.add_device(device_id, f"Press {i + 1}")
        device = Device(server.url, server.mqtt_port, device_id, token, "vibration")
        device.status()
        device.history(hours=2, every_min=15, fault_after=1.5 if i == 0 else None)
        devices.append(device)
    return org, devices


def test_sign_up_log_out_and_log_in_through_the_forms(page: Any, server: ServerProcess) -> None:
    page.goto(f"{server.url}/devices/new")
    page.wait_for_url(TO_LOGIN)  # signed out: every page sends you to the login first
    page.goto(f"{server.url}/signup")
    page.fill("input[name=organization]", "Forms Plant")
    page.fill("input[name=email]", "forms@plant.example")
    page.fill("input[name=password]", "short")
    page.click("button[type=submit]")
    page.wait_for_selector("text=password")  # the form says what is wrong and keeps the email
    assert "String should have at least 10 characters" in page.content()
    assert page.input_value("input[name=email]") == "forms@plant.example"
    page.fill("input[name=organization]", "Forms Plant")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/")
    page.wait_for_selector("text=0 devices")
    page.click("button:has-text('Log out')")
    page.wait_for_url("**/login")
    page.goto(f"{server.url}/")
    page.wait_for_url(TO_LOGIN)
    _login(page, server, "forms@plant.example", "wrong-password!")
    page.wait_for_selector("text=wrong email or password")
    _login(page, server, "forms@plant.example")
    page.wait_for_url(f"{server.url}/")
    assert "forms@plant.example" in page.inner_text("header")


def test_cards_device_page_live_log_and_alarm(page: Any, server: ServerProcess, artifacts: Path) -> None:
    org, (press, other) = _org_with_devices(server)
    _login(page, server, org.email)
    _ready(page)
    card = page.locator(f"[data-device-id='{press.device_id}']")
    card.wait_for()
    assert "online" in card.inner_text() and "Press 1" in card.inner_text()
    page.wait_for_selector("text=2 devices")
    page.screenshot(path=str(artifacts / "dashboard-fleet.png"), full_page=True)

    card.click()
    page.wait_for_url(f"**/devices/{press.device_id}")
    _ready(page)
    page.wait_for_selector("text=Recent events")
    page.wait_for_selector("canvas")  # the charts drew (ECharts renders to canvas)
    assert press.device_id in page.inner_text("body") and "running" in page.inner_text("body")
    time.sleep(1)  # let the charts draw before the screenshot
    page.screenshot(path=str(artifacts / "dashboard-device.png"), full_page=True)

    _goto(page, f"{server.url}/live")
    page.wait_for_selector("text=live")
    time.sleep(0.5)  # the page's subscription is made during its load; give the socket a moment
    sent = time.monotonic()
    seq = press.event("anomaly", score=3.1, threshold=1.0)
    page.locator(f"[data-device='{press.device_id}'][data-seq='{seq}']").wait_for(timeout=5_000)
    seen_after = time.monotonic() - sent
    assert seen_after < 1.0, f"the event took {seen_after:.2f} s from MQTT publish to the page"

    _goto(page, f"{server.url}/alarms")
    alarm = page.locator("[data-alarm-id]").filter(has_text=press.device_id).first
    alarm.wait_for()
    alarm.locator("button:has-text('Acknowledge')").click()
    page.fill("textarea", "bearing checked, grease added")
    page.click("button:has-text('Acknowledge') >> nth=-1")
    page.wait_for_selector("text=acknowledged")
    alarms = org.api.get("/api/v1/alarms", params={"device_id": press.device_id}).json()
    assert alarms[0]["acked_at"] is not None
    assert alarms[0]["note"] == "bearing checked, grease added"
    audit = org.api.get("/api/v1/organization/audit").json()
    assert any(e["action"] == "alarm.ack" and e["detail"].get("note") for e in audit)

    page.goto(f"{server.url}/stats")
    page.wait_for_selector("text=Median time to acknowledge")
    page.wait_for_selector("canvas")
    time.sleep(1)
    page.screenshot(path=str(artifacts / "dashboard-stats.png"), full_page=True)
    for device in (press, other):
        device.close()


def _read_qr(src: str) -> str:
    assert src.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("L")
    texts = scan_frame(np.asarray(image))
    assert len(texts) == 1, texts
    return texts[0]


def test_add_device_shows_a_claim_token_and_a_readable_qr_code(page: Any, server: ServerProcess) -> None:
    org, _ = _org_with_devices(server, count=0)
    _login(page, server, org.email)
    _goto(page, f"{server.url}/devices/new")
    _input(page, "new-device-id").fill("bad id with spaces")
    page.click("button:has-text('Add device')")
    page.wait_for_selector("text=String should match pattern")  # refused, nothing created
    assert org.api.get("/api/v1/devices").json() == []
    device_id = f"cam-{next(_n)}"
    _input(page, "new-device-id").fill(device_id)
    _input(page, "new-device-name").fill("Hall camera")
    page.click("button:has-text('Add device')")
    page.wait_for_selector("text=One-time claim token")
    token = page.locator("[data-testid='claim-token']").inner_text().strip()
    _input(page, "wifi-ssid").fill("plant-floor")
    _input(page, "wifi-password").fill("s3cret-passphrase")
    page.click("button:has-text('Show QR code')")
    image = page.locator("img[src^='data:image/png']")
    image.wait_for()
    payload = decode_payload(_read_qr(image.get_attribute("src")))
    assert (payload.device_id, payload.claim_token, payload.ssid) == (device_id, token, "plant-floor")
    assert payload.passphrase == "s3cret-passphrase"
    assert payload.server_url == server.url
    claimed = httpx.post(
        f"{payload.server_url}/api/v1/devices/claim",
        json={"device_id": payload.device_id, "claim_token": payload.claim_token},
    )
    assert claimed.status_code == 200  # the code carries a working claim token


def test_another_organization_sees_none_of_it(page: Any, server: ServerProcess) -> None:
    org_a, (press,) = _org_with_devices(server, count=1)
    org_b = sign_up(server.url, f"b{next(_n)}@other.example", "Other Plant")
    _login(page, server, org_b.email)
    page.wait_for_selector("text=0 devices")
    assert press.device_id not in page.content()
    page.goto(f"{server.url}/devices/{press.device_id}")
    page.wait_for_selector("text=There is no device")
    _goto(page, f"{server.url}/live")
    page.wait_for_selector("text=live")
    time.sleep(0.5)
    press.event("anomaly")
    wait_until(lambda: org_a.api.get("/api/v1/events", params={"device_id": press.device_id}).json()["items"])
    time.sleep(1.0)  # long enough for a pushed event to arrive, were it sent
    assert page.locator("[data-event-id]").count() == 0
    _goto(page, f"{server.url}/alarms")
    page.wait_for_selector("text=No open alarms")
    press.close()


def test_account_page_changes_the_password_and_makes_an_api_key(page: Any, server: ServerProcess) -> None:
    org, _ = _org_with_devices(server, count=0)
    _login(page, server, org.email)
    page.wait_for_url(f"{server.url}/")
    _goto(page, f"{server.url}/account")
    _input(page, "pw-current").fill("not-my-password")
    _input(page, "pw-new").fill("a-new-password-42")
    page.click("button:has-text('Change')")
    page.wait_for_selector("text=the current password is wrong")
    _input(page, "pw-current").fill(PASSWORD)
    _input(page, "pw-new").fill("a-new-password-42")
    page.click("button:has-text('Change')")
    # The change ended every session, this browser's too: back to the login page, told why.
    page.wait_for_url("**/login?*")
    page.locator("[data-testid='form-notice']").wait_for()
    assert page.locator("input[name=email]").input_value() == org.email
    assert org.api.get("/api/v1/auth/me").status_code == 401  # the sign-up session ended too
    old = httpx.post(f"{server.url}/api/v1/auth/login", json={"email": org.email, "password": PASSWORD})
    new = httpx.post(
        f"{server.url}/api/v1/auth/login", json={"email": org.email, "password": "a-new-password-42"}
    )
    assert (old.status_code, new.status_code) == (401, 200)
    _login(page, server, org.email, "a-new-password-42")
    page.wait_for_url(f"{server.url}/")
    _goto(page, f"{server.url}/account")

    _input(page, "key-name").fill("grafana")
    page.click("button:has-text('Create key')")
    secret = page.locator("[data-testid='api-key-secret']").inner_text().strip()
    assert secret.startswith("efk_")
    me = httpx.get(f"{server.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.json()["email"] == org.email
