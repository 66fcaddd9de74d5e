"""The dashboard as an installable app: manifest and icons, the service worker at the root scope, a
clear offline page, a cache that holds only the static shell (no page, API answer or sign-in form),
and Web Push shown as a notification whose link stays on this server (real chromium, real server)."""

import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from edgefleet.dashboard import pwa
from edgefleet.dashboard.icons import icon_png
from tests.dashboard.stack import PASSWORD, Org, ServerProcess, sign_up

CACHED_JS = """async () => {
  const out = [];
  for (const name of await caches.keys()) {
    for (const request of await (await caches.open(name)).keys()) out.push(new URL(request.url).pathname);
  }
  return out;
}"""
NOTIFICATIONS_JS = """async () => (await (await navigator.serviceWorker.ready).getNotifications())
  .map((n) => ({title: n.title, body: n.body, tag: n.tag, url: n.data && n.data.url}))"""


def test_manifest_names_the_app_and_its_icons() -> None:
    manifest = pwa.manifest()
    assert (manifest["start_url"], manifest["scope"], manifest["display"]) == ("/", "/", "standalone")
    icons = {(i["sizes"], i["purpose"]) for i in manifest["icons"]}
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= icons
    assert set(pwa.SHELL) >= {i["src"] for i in manifest["icons"]}  # what it names, the worker can cache


def test_icons_are_real_pngs_with_a_transparent_corner_unless_maskable() -> None:
    for size in (192, 512):
        icon, maskable = (Image.open(io.BytesIO(icon_png(size, kind))) for kind in ("any", "maskable"))
        assert icon.mode == maskable.mode == "RGBA" and icon.size == maskable.size == (size, size)
        pixels, full = np.asarray(icon), np.asarray(maskable)
        assert pixels[0, 0, 3] == 0 and full[0, 0, 3] == 255  # a rounded square; the maskable fills it
        assert pixels[size // 2, size // 2, 3] == 255
        assert (pixels[size // 2, :, :3] == 255).all(axis=1).any()  # the white trace crosses the middle
    with pytest.raises(ValueError, match="no 100 px icon"):
        icon_png(100)


def test_the_worker_caches_only_the_static_shell() -> None:
    source = pwa.service_worker()
    shell = json.loads(source.split("const SHELL = ", 1)[1].split(";", 1)[0])
    assert shell == list(pwa.SHELL)
    assert not [
        p for p in shell if p.startswith(("/api", "/login", "/ui", "/alarms", "/devices")) or p == "/"
    ]
    assert "cache.put" not in source  # nothing is added to the cache after install


@pytest.fixture(scope="module")
def owner(server: ServerProcess) -> Org:
    return sign_up(server.url, "pwa@plant.example", "PWA Plant")


@pytest.fixture
def app_page(browser: Any, server: ServerProcess, owner: Org) -> Iterator[Any]:
    """A signed-in phone page with the service worker installed and in control."""
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"{server.url}/login")
    page.fill("input[name=email]", owner.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/")
    scope = page.evaluate("async () => (await navigator.serviceWorker.ready).scope")
    assert scope == f"{server.url}/"
    page.reload()  # from now on the worker handles this page's requests
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    yield page
    context.close()


@pytest.mark.slow
def test_the_app_files_are_served_with_their_types(server: ServerProcess) -> None:
    manifest = httpx.get(f"{server.url}/manifest.webmanifest")
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    for icon in manifest.json()["icons"]:
        response = httpx.get(server.url + icon["src"])
        size = int(icon["sizes"].split("x")[0])
        assert response.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(response.content)).size == (size, size)
    worker = httpx.get(f"{server.url}/sw.js")
    assert (
        worker.headers["content-type"].startswith("text/javascript")
        and "no-cache" in worker.headers["cache-control"]
    )
    assert httpx.get(f"{server.url}/icons/icon-64.png").status_code == 404


@pytest.mark.needs("chromium")
@pytest.mark.slow
def test_offline_the_app_says_so_and_its_cache_holds_no_user_data(
    app_page: Any, server: ServerProcess
) -> None:
    page = app_page
    for path in ("/alarms", "/account", "/"):  # pages and the API calls behind them, all online
        page.goto(server.url + path)
        page.wait_for_function("window.did_handshake === true")
    assert page.evaluate("async () => (await fetch('/api/v1/auth/me')).status") == 200
    cached = page.evaluate(CACHED_JS)
    assert sorted(cached) == sorted(pwa.SHELL)  # the shell, and nothing a user saw

    page.context.set_offline(True)
    for path in ("/login", "/alarms/1", "/"):
        page.goto(server.url + path)
        page.get_by_role("heading", name="You are offline").wait_for()
        assert "cannot reach its server" in page.inner_text("main")
    failed = _settled(
        page, "async () => { try { await fetch('/api/v1/auth/me'); return false } catch { return true } }"
    )
    assert failed  # an API call fails offline rather than answering from a cache
    assert page.locator("#retry").get_attribute("href") == "/"
    page.context.set_offline(False)
    fleet = page.locator("h1", has_text="Fleet")
    for _ in range(5):  # "Try again", unless the page's own `online` listener has reloaded it already
        _settled(page, "document.getElementById('retry')?.click()")
        try:
            fleet.wait_for(timeout=3_000)
            break
        except PlaywrightTimeout:
            continue
    assert fleet.is_visible()


def _settled(page: Any, script: str) -> Any:
    """Evaluate once the page stays put: the offline page reloads itself on the browser's `online`
    event, which chromium's offline emulation also fires now and then while still offline."""
    for _ in range(5):
        try:
            return page.evaluate(script)
        except PlaywrightError as err:
            if "context was destroyed" not in str(err):
                raise
            page.wait_for_load_state()
    raise AssertionError("the page kept navigating")


def _push(page: Any, server: ServerProcess, payload: dict[str, Any]) -> None:
    """Deliver a push message to the page's service worker as the push service would (DevTools)."""
    cdp = page.context.new_cdp_session(page)
    registrations: list[str] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(
        r["registrationId"] for r in e["registrations"] if r["scopeURL"] == f"{server.url}/"
    ))  # fmt: skip
    cdp.send("ServiceWorker.enable")
    for _ in range(100):  # events arrive while Playwright waits, not while Python sleeps
        if registrations:
            break
        page.wait_for_timeout(100)
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": f"{server.url}/", "registrationId": registrations[0], "data": json.dumps(payload)},
    )


@pytest.mark.needs("chromium")
@pytest.mark.slow
def _shown(page: Any, wanted: Any) -> list[dict[str, Any]]:
    """The notifications on screen once `wanted(notifications)` holds (10 s at most)."""
    for _ in range(100):
        if wanted(shown := page.evaluate(NOTIFICATIONS_JS)):
            break
        page.wait_for_timeout(100)
    return list(shown)


def test_a_push_message_becomes_a_notification_that_links_to_this_server_only(
    app_page: Any, server: ServerProcess
) -> None:
    page = app_page
    page.context.grant_permissions(["notifications"], origin=server.url)
    alarm = {
        "title": "ALARM anomaly on Pump 1",
        "body": "imbalance at 15 Hz",
        "url": "/alarms/7",
        "tag": "alarm-7",
    }
    _push(page, server, alarm)
    assert _shown(page, lambda shown: shown) == [alarm]
    _push(
        page, server, {"title": "phishing", "body": "x", "url": "https://evil.example/login", "tag": "other"}
    )
    other = _shown(page, lambda shown: len(shown) == 2)[-1]
    assert (other["tag"], other["url"]) == ("other", "/")  # a link elsewhere is not followed

    _push(page, server, {**alarm, "title": "ALARM anomaly on Pump 1 (escalated)"})
    again = _shown(page, lambda shown: any(n["title"].endswith("(escalated)") for n in shown))
    assert [n["title"] for n in again if n["tag"] == "alarm-7"] == [f"{alarm['title']} (escalated)"]
