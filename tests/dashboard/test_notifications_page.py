"""The notifications page and the bell, in a real browser against `edgefleet server`: add an email
channel and a rule, send a test and see its delivery (and the mail in a real SMTP server), then a
device's alarm shows in the bell and reaches the inbox."""

import itertools
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from edgefleet.server.notify.local_inbox import LocalInbox
from tests.dashboard.stack import Device, ServerProcess, sign_up
from tests.dashboard.test_browser import _goto, _input, _login

pytestmark = [pytest.mark.needs("chromium"), pytest.mark.slow]
_n = itertools.count()


def _fill(page: Any, testid: str, value: str) -> None:
    field = _input(page, testid)
    field.fill(value)
    field.blur()


def test_channel_rule_test_send_and_the_bell(
    page: Any, server: ServerProcess, inbox: LocalInbox, artifacts: Path
) -> None:
    n = next(_n)
    org = sign_up(server.url, f"notify{n}@plant{n}.example", f"Notify {n}")
    _login(page, server, org.email)
    page.wait_for_url(f"{server.url}/")
    _goto(page, f"{server.url}/notifications")

    _fill(page, "channel-name", "Shift mail")
    _fill(page, "smtp-host", "127.0.0.1")
    _fill(page, "smtp-port", str(inbox.port))
    page.click("[data-testid='smtp-security']")
    page.locator(".q-menu:visible").get_by_role("option", name="none (trusted relay)").click()
    _fill(page, "smtp-password", "relay-password-1")
    _fill(page, "smtp-sender", "edgefleet@plant.example")
    _fill(page, "smtp-to", "shift@plant.example")
    page.click("[data-testid='add-channel']")
    card = page.locator("[data-testid='channel-card']").filter(has_text="Shift mail")
    card.wait_for()
    assert "secrets set: password" in card.inner_text() and "relay-password-1" not in page.content()

    _fill(page, "rule-name", "Everything to the shift")
    page.click("[data-testid='rule-channels']")
    page.locator(".q-menu:visible").get_by_role("option", name="Shift mail (email)").click()
    page.keyboard.press("Escape")
    page.click("[data-testid='add-rule']")
    page.locator("[data-testid='rule-card']").filter(has_text="Everything to the shift").wait_for()

    card.locator("[data-testid='test-send']").click()
    sent = page.locator("[data-testid='delivery'][data-status='sent']").filter(has_text="test")
    expect(sent).to_have_count(1, timeout=15_000)  # the server's worker sent it; the log shows it
    [mail] = inbox.wait_for(1, 5)
    assert mail["Subject"] == "[edgefleet] test notification" and mail["To"] == "shift@plant.example"

    press = Device(
        server.url, server.mqtt_port, f"n{n}-press", org.add_device(f"n{n}-press", "Press"), "vibration"
    )
    try:
        press.status()
        press.event("anomaly")
        count = page.locator("[data-testid='bell-count']")
        expect(count).to_have_text("1", timeout=15_000)
        page.click("[data-testid='bell']")
        item = page.locator("[data-testid='bell-item']").first
        expect(item).to_contain_text(f"anomaly on n{n}-press opened")
        expect(count).to_be_hidden(timeout=5_000)  # opening the bell marks it seen
        page.screenshot(path=str(artifacts / "notifications-bell.png"))
        mails = inbox.wait_for(2, 15)
        assert mails[1]["Subject"] == f"[edgefleet] OPEN warning anomaly alarm on n{n}-press (Press)"
        page.keyboard.press("Escape")
        opened = page.locator("[data-testid='delivery'][data-status='sent']").filter(has_text="opened")
        expect(opened).to_have_count(1, timeout=10_000)
    finally:
        press.close()
