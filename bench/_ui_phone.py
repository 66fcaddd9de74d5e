"""The fleet page as a phone gets it: 390x844, touch, and a CPU slowed 4x (Chrome DevTools'
`Emulation.setCPUThrottlingRate`, Lighthouse's mobile setting), on the same server and fleet as the
desktop figures of `bench ui-latency`.

- first contentful paint: the browser's own `first-contentful-paint` entry;
- interactive: from navigation start until the first device card is visible *and* the page's
  WebSocket is up (NiceGUI runs a tap's handler only then), polled every animation frame.

The first render is cold (NiceGUI's scripts and styles not in the browser's cache); the median is
over the warm ones, as a returning technician gets them."""

import statistics
from typing import Any

PHONE = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 3,
}
TARGET_FCP_MS = 1800.0  # Lighthouse's "good" first contentful paint on mobile
TARGET_INTERACTIVE_MS = 3800.0  # Lighthouse's "good" time to interactive on mobile

INTERACTIVE_JS = """() => {
  const card = document.querySelector('[data-device-id]');
  const shown = card && card.getBoundingClientRect().height > 0;
  return shown && window.did_handshake === true ? performance.now() : false;
}"""
PAINT_JS = """() => {
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  const nav = performance.getEntriesByType('navigation')[0];
  return {fcp_ms: paint ? paint.startTime : null, dom_content_loaded_ms: nav.domContentLoadedEventEnd,
          html_kib: nav.encodedBodySize / 1024};
}"""


def _render(page: Any, cdp: Any, throttle: float) -> dict[str, Any]:
    page.goto("about:blank")
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": throttle})
    page.goto("/", wait_until="commit")
    interactive = page.wait_for_function(INTERACTIVE_JS, polling="raf", timeout=60_000).json_value()
    page.wait_for_function("() => performance.getEntriesByName('first-contentful-paint').length > 0")
    paint = page.evaluate(PAINT_JS)
    return {"interactive_ms": round(float(interactive), 1), **{k: round(v, 1) for k, v in paint.items()}}


def phone_fleet(
    browser: Any, base_url: str, account: tuple[str, str], *, runs: int, throttle: float
) -> dict[str, Any]:
    """Signs in (unthrottled), then renders the fleet page `runs` + 1 times on a throttled phone."""
    context = browser.new_context(base_url=base_url, **PHONE)
    page = context.new_page()
    page.goto("/login")
    page.fill("input[name=email]", account[0])
    page.fill("input[name=password]", account[1])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/", timeout=30_000)
    cdp = context.new_cdp_session(page)
    renders = [_render(page, cdp, throttle) for _ in range(runs + 1)]
    cards = page.locator("[data-device-id]").count()
    context.close()
    cold, warm = renders[0], renders[1:]
    return {
        "phone_fcp_ms": round(statistics.median(r["fcp_ms"] for r in warm), 1),
        "phone_interactive_ms": round(statistics.median(r["interactive_ms"] for r in warm), 1),
        "phone_cold": cold,
        "phone_renders": warm,
        "phone_cards": cards,
        "phone_setup": {"viewport": "390x844", "cpu_throttling_rate": throttle, "touch": True},
    }


def targets(figures: dict[str, Any], fleet: int) -> dict[str, Any]:
    return {
        "phone_fcp_ms": {
            "target": f"<= {TARGET_FCP_MS:.0f} at {fleet} devices, 4x CPU throttling",
            "met": figures["phone_fcp_ms"] <= TARGET_FCP_MS,
        },
        "phone_interactive_ms": {
            "target": f"<= {TARGET_INTERACTIVE_MS:.0f} at {fleet} devices, 4x CPU throttling",
            "met": figures["phone_interactive_ms"] <= TARGET_INTERACTIVE_MS,
        },
    }
