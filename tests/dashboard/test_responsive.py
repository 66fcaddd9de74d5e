"""Every page at a phone (390x844), a tablet (820x1180) and a desktop (1400x900) in a real browser
(Debian chromium) against a real server: nothing reaches past the screen's edge, no chart draws a
label over another, the navigation is there, axe-core finds nothing serious or critical (light and
dark), screenshots for review; keyboard use; and the technician's journey from a notification link
to an acknowledged alarm in two taps on a phone."""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.dashboard import plant as plant_kit
from tests.dashboard import why_data
from tests.dashboard.stack import PASSWORD, ServerProcess, wait_until
from tests.dashboard.ui_checks import OVERFLOW_JS, axe_violations, chart_problems

pytestmark = [pytest.mark.needs("chromium"), pytest.mark.slow]
VIEWPORTS = {"phone": (390, 844), "tablet": (820, 1180), "desktop": (1400, 900)}
NEXT_FRAMES_JS = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"
AXE_ON_DESKTOP = {"desktop": ("fleet", "device", "alarms", "login")}
"""Pages share their content at every width; what differs is the frame, checked on these."""
NOTE = "bearing temperature normal, imbalance at the fan: blade cleaned"


@pytest.fixture(scope="module")
def plant(server: ServerProcess) -> Iterator[plant_kit.Plant]:
    built = plant_kit.build(server)
    yield built
    built.close()


@pytest.fixture(scope="module")
def signed_in(browser: Any, server: ServerProcess, plant: plant_kit.Plant) -> dict[str, Any]:
    """The browser state of a signed-in owner: each context starts from it instead of the login form."""
    context = browser.new_context()
    page = context.new_page()
    _log_in(page, server, plant.org.email)
    page.wait_for_url(f"{server.url}/")
    state: dict[str, Any] = context.storage_state()
    context.close()
    return state


def _log_in(page: Any, server: ServerProcess, email: str) -> None:
    if "/login" not in page.url:
        page.goto(f"{server.url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def _pages(plant: plant_kit.Plant) -> list[tuple[str, str, str]]:
    """(name, path, what shows once the page has its data) for every signed-in page."""
    return [
        ("fleet", "/", "[data-testid='device-card']"),
        ("alarm", f"/alarms/{plant.alarm_id}", "[data-testid='score-chart']"),
        ("alarms", "/alarms", "[data-testid='alarm-card']"),
        ("device", "/devices/ph-pump-1", "[data-testid='device-events']"),
        ("camera", "/devices/ph-cam-1", "[data-testid='presence-chart']"),
        ("live", "/live", "[data-event-id]"),
        ("stats", "/stats", "[data-testid='chart-alarms']"),
        ("models", "/models", "[data-testid='model-row']"),
        ("rollouts", "/rollouts", "[data-testid='rollout-card']"),
        ("rollout", f"/rollouts/{plant.rollout_id}", "[data-testid='rollout-devices']"),
        ("add-device", "/devices/new", "[data-testid='add-device']"),
        ("account", "/account", "[data-testid='create-key']"),
    ]


SIGNED_OUT = [
    ("login", "/login", "input[name=email]"),
    ("signup", "/signup", "input[name=organization]"),
    ("invite", "/invite", "input[name=token]"),
    ("offline", "/offline.html", "#retry"),
]


def _open(page: Any, url: str, ready: str) -> None:
    page.goto(url)
    page.locator(ready).first.wait_for()
    if page.evaluate("() => window.did_handshake !== undefined"):  # a NiceGUI page: its socket is up
        page.wait_for_function("window.did_handshake === true")


def _nav_problems(page: Any, viewport: str) -> list[str]:
    """The way to every other page is on screen: the drawer on a desktop, the menu button (and on a
    phone the bottom bar) below that."""
    width, height = VIEWPORTS[viewport]
    wanted = {
        "phone": ["[data-testid='menu']", "[data-testid='tab-alarms']", "[data-testid='tab-menu']"],
        "tablet": ["[data-testid='menu']"],
        "desktop": ["#ef-nav a[href='/alarms']", "#ef-nav a[href='/account']", "[data-testid='logout']"],
    }[viewport]
    problems = []
    for selector in wanted:
        box = page.locator(selector).bounding_box()
        if (
            box is None
            or box["x"] < 0
            or box["x"] + box["width"] > width
            or box["y"] + box["height"] > height
        ):
            problems.append(f"navigation {selector} not on screen ({box})")
    return problems


def _layout_problems(page: Any, viewport: str, signed_in: bool) -> list[str]:
    overflow = page.evaluate(OVERFLOW_JS)
    found = [f"past the right edge: {item}" for item in overflow["found"]]
    if overflow["scrollWidth"] > overflow["width"]:
        found.append(f"scrolls sideways: {overflow['scrollWidth']} > {overflow['width']} px")
    found += chart_problems(page)
    return found + (_nav_problems(page, viewport) if signed_in else [])


def _axe(page: Any) -> list[str]:
    return [f"axe {v['impact']} {v['id']}: {v['nodes']}" for v in axe_violations(page)]


def _sweep(
    browser: Any, server: ServerProcess, pages: list[tuple[str, str, str]], viewport: str, **options: Any
) -> list[str]:
    """Open each page and return what is wrong with it: layout, charts and navigation everywhere; axe
    on the phone, light and dark (switched as a phone switches it: the system's preference, on the
    same page), and on the desktop for the parts only it shows (the open drawer, the user's line)."""
    width, height = VIEWPORTS[viewport]
    shots: Path = options["shots"]
    signed_in = options.get("storage_state")
    context = browser.new_context(viewport={"width": width, "height": height}, storage_state=signed_in)
    context.set_default_timeout(15_000)
    page = context.new_page()
    problems: list[str] = []
    for name, path, ready in pages:
        _open(page, server.url + path, ready)
        found = _layout_problems(page, viewport, signed_in is not None)
        found += _axe(page) if viewport == "phone" or name in AXE_ON_DESKTOP.get(viewport, ()) else []
        page.screenshot(path=str(shots / f"{viewport}-{name}.png"), full_page=viewport == "phone")
        if viewport == "phone":
            page.emulate_media(color_scheme="dark")
            try:
                page.wait_for_function("document.body.classList.contains('body--dark') || !window.Quasar")
            except PlaywrightTimeout:
                found.append("the system's dark preference was not followed")
            page.evaluate(NEXT_FRAMES_JS)  # Quasar's components follow the body's class a tick later
            found += [f"dark: {item}" for item in _axe(page)]
            page.screenshot(path=str(shots / f"{viewport}-dark-{name}.png"), full_page=True)
            page.emulate_media(color_scheme="light")
        problems += [f"{name} ({path}): {item}" for item in found]
    context.close()
    return problems


@pytest.fixture(scope="module")
def shots(artifacts: Path) -> Path:
    directory = artifacts / "screenshots"
    directory.mkdir(exist_ok=True)
    return directory


@pytest.mark.needs("axe")
@pytest.mark.parametrize("viewport", ["phone", "tablet", "desktop"])
def test_every_page_fits_its_screen_and_passes_axe_light_and_dark(
    viewport: str,
    browser: Any,
    server: ServerProcess,
    plant: plant_kit.Plant,
    signed_in: dict[str, Any],
    shots: Path,
) -> None:
    problems = _sweep(browser, server, _pages(plant), viewport, storage_state=signed_in, shots=shots)
    problems += _sweep(browser, server, SIGNED_OUT, viewport, shots=shots)
    assert not problems, "\n".join(problems)


def _phone(browser: Any, **options: Any) -> Any:
    context = browser.new_context(viewport={"width": 390, "height": 844}, **options)
    context.set_default_timeout(15_000)
    return context


def test_phone_fleet_opens_with_the_open_alarms_and_a_device_on_the_first_screen(
    browser: Any, server: ServerProcess, plant: plant_kit.Plant, signed_in: dict[str, Any]
) -> None:
    context = _phone(browser, storage_state=signed_in)
    page = context.new_page()
    _open(page, f"{server.url}/", "[data-testid='device-card']")
    strip = page.locator(f"[data-testid='strip-alarm'][data-alarm-id='{plant.alarm_id}']")
    card = page.locator("[data-testid='device-card']").first
    assert strip.bounding_box()["y"] < 844 / 2  # alarms first
    assert card.bounding_box()["y"] + 60 < 844  # and a device card's state within the first screen
    assert "alarm" in card.inner_text()  # devices in alarm come first, saying so in words
    tiles = [
        page.locator(f"[data-testid='tile-{name}']").bounding_box()["y"]
        for name in ("devices", "online", "open")
    ]
    assert max(tiles) - min(tiles) < 2  # three compact tiles to a row, not one tile per row
    strip.click()
    page.wait_for_url(f"**/alarms/{plant.alarm_id}")
    context.close()


def _focused(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(
        """() => { const el = document.activeElement, style = getComputedStyle(el);
          return {id: el.id, text: el.innerText?.trim() ?? '', href: el.getAttribute('href'),
                  outline: style.outlineStyle, width: parseFloat(style.outlineWidth)}; }"""
    )
    return result


def _tab_to(page: Any, wanted: Any, limit: int = 25) -> dict[str, Any]:
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = _focused(page)
        if wanted(focused):
            return focused
    raise AssertionError(f"not reached with {limit} presses of Tab; last focus {focused}")


def test_keyboard_alone_opens_the_menu_and_reaches_the_alarms_with_a_visible_focus(
    browser: Any, server: ServerProcess, plant: plant_kit.Plant, signed_in: dict[str, Any]
) -> None:
    context = _phone(browser, storage_state=signed_in)
    page = context.new_page()
    _open(page, f"{server.url}/", "[data-testid='device-card']")
    page.keyboard.press("Tab")
    skip = _focused(page)
    assert skip["text"] == "Skip to content" and skip["outline"] != "none" and skip["width"] >= 2
    page.keyboard.press("Enter")
    assert _focused(page)["id"] == "main"  # past the header, at the page's content
    _open(page, f"{server.url}/", "[data-testid='device-card']")
    menu = _tab_to(
        page, lambda f: f["text"] == "menu", limit=3
    )  # the menu button, second after the skip link
    assert menu["outline"] != "none" and menu["width"] >= 2
    page.keyboard.press("Enter")
    page.wait_for_function("document.activeElement.closest('#ef-nav') !== null")  # focus moved into the menu
    link = _tab_to(page, lambda f: f["href"] == "/alarms", limit=10)
    assert link["outline"] != "none"
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.url}/alarms")
    page.locator("[data-testid='alarm-card']").first.wait_for()
    button = _tab_to(page, lambda f: f["text"].endswith("Acknowledge"), limit=40)
    assert button["outline"] != "none" and button["width"] >= 2
    context.close()


def test_technician_acknowledges_from_a_notification_link_in_two_taps(
    browser: Any, server: ServerProcess, plant: plant_kit.Plant, shots: Path
) -> None:
    fan = plant.devices[1]
    fan.event("anomaly", score=6.0, threshold=1.0, explanation=why_data.imbalance(plant_kit.HINT))

    def fan_alarm() -> int | None:
        alarms = plant.org.api.get("/api/v1/alarms", params={"device_id": fan.device_id}).json()
        return alarms[0]["id"] if alarms else None

    alarm_id = wait_until(fan_alarm)
    context = _phone(browser, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = context.new_page()
    # the link a notification carries (server/notify/message.py), opened by the service worker's click
    page.goto(f"{server.url}/alarms?alarm={alarm_id}")
    page.wait_for_url(re.compile(r".*/login\?next=.+"))
    _log_in(page, server, plant.org.email)  # typing and submitting the sign-in: not counted below
    page.wait_for_url(f"{server.url}/alarms/{alarm_id}")
    page.wait_for_function("window.did_handshake === true")
    detail = page.locator("[data-testid='alarm-detail']")
    assert plant_kit.HINT in detail.inner_text() and "Fan 2, roof" in detail.inner_text()
    acknowledge = page.locator("[data-testid='ack']")
    assert acknowledge.bounding_box()["y"] + acknowledge.bounding_box()["height"] <= 844  # no scrolling first

    taps = 0
    page.locator("textarea[data-testid='note'], [data-testid='note'] textarea").first.tap()
    taps += 1
    page.keyboard.type(NOTE)
    acknowledge.tap()
    taps += 1
    page.locator("[data-alarm-state='acknowledged']").wait_for()
    assert page.locator("[data-testid='alarm-note']").inner_text() == f"Note: {NOTE}"
    assert "Acknowledged" in page.locator("[data-testid='acked']").inner_text()
    assert taps <= 3
    page.screenshot(path=str(shots / "phone-journey-acknowledged.png"))

    stored = plant.org.api.get("/api/v1/alarms", params={"device_id": fan.device_id}).json()[0]
    assert stored["acked_at"] is not None and stored["note"] == NOTE
    page.reload()  # the alarm page says so on its own too, not only right after the tap
    page.locator("[data-alarm-state='acknowledged']").wait_for()
    assert page.locator("[data-testid='ack']").count() == 0
    context.close()
