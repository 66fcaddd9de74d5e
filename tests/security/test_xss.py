"""Stored and reflected XSS (issue 18, finding 2) in a real browser against a real server process.

Hostile text goes in through every field a user or a device writes (email of an invited member,
organization name, API key name, device names, event messages, an anomaly's hint text, a
commissioning report's message, an alarm note, a model card's description and lineage, a rollout's
failure reason) the way the other tests seed data: the REST API and MQTT. Every page that shows it is
opened, the hostile text is hovered and clicked, and the page must show it as text: no element or
inline handler made from it, no script run (`window.__xss` unset, the title unchanged), no NiceGUI
prop evaluated from it.

Every payload assigns `__xss` (a global) the tag of the field it came through, so a failure names the
field. The strings try each way out: closing a quoted NiceGUI prop (`" onclick="...`), a `:prop`
(which NiceGUI evaluates as JavaScript), raw HTML (`<img onerror>`), a Vue template (`{{ }}`).
"""

import ast
import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from edgefleet.contracts import Channel, OtaState, encode, topic_for
from edgefleet.dashboard import charts
from edgefleet.dashboard.charts import sparkline_svg
from edgefleet.server.services.drift_queries import DriftPoint, VersionSeries
from tests.dashboard.stack import PASSWORD, Device, Org, ServerProcess, sign_up, wait_until
from tests.dashboard.why_data import imbalance, report
from tests.server import registry_kit

_n = itertools.count()


def short(tag: str) -> str:
    """At most 64 characters (API key names)."""
    return f"""xss{tag}" onclick="__xss='{tag}'"<img src=x onerror=__xss='{tag}'>"""


def mid(tag: str) -> str:
    """At most 128 characters (organization and device names)."""
    return (
        f"""xss{tag}" onclick="__xss='{tag}'" :title="__xss='{tag}'" {{{{__xss='{tag}'}}}}"""
        f"""<img src=x onerror=__xss='{tag}'>"""
    )


def long(tag: str) -> str:
    """At most 256 characters (messages, hint texts, notes, descriptions, reasons)."""
    return (
        f"""xss{tag}" onclick="__xss='{tag}'" onmouseover="__xss='{tag}'" :title="__xss='{tag}'" """
        f"""innerHTML="<b>x</b>" {{{{ (__xss='{tag}') }}}} ${{__xss='{tag}'}} """
        f"""<img src=x onerror="__xss='{tag}'"><script>__xss='{tag}'</script>"""
    )


# Emails pass the server's email check (one @, no spaces) and are stored in lower case: the finding's.
EMAIL_ATTR = "q\"/onclick=\"__xss='em';document.title='pwned'//@x.y"
EMAIL_HTML = "<img/src=x/onerror=__xss='e2'>@x.y"
# A link someone is sent: the login form's hidden `next` field used to be built from it.
NEXT = "/x :onclick=__xss=7 \\"  # (quotes are refused; a trailing backslash unbalanced the old parse)

PROBE = """() => {
  const handlers = [];
  for (const el of document.querySelectorAll('*')) {
    for (const a of el.attributes) {
      if (a.name.startsWith('on')) handlers.push(`${el.tagName.toLowerCase()} ${a.name}="${a.value}"`);
    }
  }
  const made = [...document.querySelectorAll('img[src="x"], script:not([src]), b')]
    .filter((e) => e.tagName === 'IMG' || (e.tagName === 'B' ? e.textContent.trim() === 'x'
      : e.textContent.trim().startsWith('__xss')))
    .map((e) => e.outerHTML);
  return {flag: window.__xss ?? null, title: document.title, handlers, made, text: document.body.innerText};
}"""

# Hover and click (and focus) every element whose own text or attributes carry a payload, without
# following links: the events reach the element itself, as a user's pointer would.
POKE = """() => {
  if (!window.__pokeGuard) {
    window.addEventListener('click', (e) => { if (!e.isTrusted) e.preventDefault(); }, true);
    window.__pokeGuard = true;
  }
  let poked = 0;
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].filter((c) => c.nodeType === 3).map((c) => c.textContent).join('')
      + [...el.attributes].map((a) => a.value).join(' ');
    if (!own.toLowerCase().includes('xss')) continue;
    for (const type of ['mouseover', 'mouseenter', 'mousedown', 'mouseup', 'click', 'dblclick']) {
      el.dispatchEvent(new MouseEvent(type, {bubbles: false, cancelable: true, view: window}));
    }
    el.dispatchEvent(new FocusEvent('focus'));
    poked += 1;
  }
  return poked;
}"""


class Watch:
    """Dialogs and NiceGUI's "Error while converting :prop" console errors of one page."""

    def __init__(self, page: Any) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", self._console)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message: Any) -> None:
        if "convert" in message.text.lower():
            self.errors.append(message.text)


def _ready(page: Any) -> None:
    page.wait_for_function("window.did_handshake === true")


def _clean(page: Any, watch: Watch, where: str, expect: list[str]) -> int:
    """The page shows every `expect` text verbatim and nothing of it ran; then poke it and look again."""
    for fragment in expect:
        try:
            page.wait_for_function("(t) => document.body.innerText.includes(t)", arg=fragment, timeout=15_000)
        except Exception as err:
            shown = page.inner_text("body")[-3000:]
            raise AssertionError(f"{where}: {fragment!r} is not shown as text; the page: {shown}") from err
    poked = int(page.evaluate(POKE))
    time.sleep(0.3)
    state = page.evaluate(PROBE)
    assert state["flag"] is None, f"{where}: a payload ran (window.__xss = {state['flag']!r})"
    assert "pwned" not in state["title"].lower(), f"{where}: the title was changed: {state['title']!r}"
    assert state["handlers"] == [], f"{where}: inline handlers made from data: {state['handlers']}"
    assert state["made"] == [], f"{where}: elements made from data: {state['made']}"
    assert watch.dialogs == [] and watch.errors == [], f"{where}: {watch.dialogs} {watch.errors}"
    return poked


def _login(page: Any, server: ServerProcess, email: str) -> None:
    page.goto(f"{server.url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    try:
        page.wait_for_url(f"{server.url}/")
    except Exception as err:
        raise AssertionError(f"{email} could not log in: {page.url}") from err
    _ready(page)


def _invite(server: ServerProcess, owner: Org, email: str) -> None:
    invite = owner.api.post("/api/v1/users/invites", json={"email": email, "role": "admin"})
    assert invite.status_code == 201, invite.text
    accepted = httpx.post(
        f"{server.url}/api/v1/auth/invites/accept",
        json={"token": invite.json()["token"], "password": PASSWORD},
    )
    assert accepted.status_code == 201, accepted.text


def _ota_failed(device: Device, rollout_id: int, reason: str) -> None:
    message = OtaState(
        device_id=device.device_id, seq=next(device.seq), ts=datetime.now(UTC), state="FAILED",
        rollout_id=str(rollout_id), reason=reason,
    )  # fmt: skip
    info = device.client.publish(topic_for(device.device_id, Channel.OTA_STATE), encode(message), qos=1)
    info.wait_for_publish(10)


def _seed(server: ServerProcess, n: int) -> dict[str, Any]:
    """Hostile text through every field, by the API and over MQTT, as users and devices write it."""
    owner = sign_up(server.url, f"owner{n}@xss{n}.example", mid("og"))
    for email in (EMAIL_ATTR, EMAIL_HTML):
        _invite(server, owner, email)
    key = owner.api.post("/api/v1/auth/api-keys", json={"name": short("ak")})
    assert key.status_code == 201, key.text

    pump_id, fan_id = f"x{n}-pump", f"x{n}-fan"
    pump = Device(server.url, server.mqtt_port, pump_id, owner.add_device(pump_id, mid("d1")), "vibration")
    fan = Device(server.url, server.mqtt_port, fan_id, owner.add_device(fan_id, mid("d2")), "vibration")
    now = datetime.now(UTC)
    for device in (pump, fan):
        device.status()
        for i in range(6):
            device.telemetry(now - timedelta(minutes=60 - 10 * i), 0.5 if i < 4 else 5.0)
    pump.event(
        "anomaly", score=5.0, threshold=1.0, severity="critical",
        explanation=imbalance(hint_text=long("ht")), message=long("ms"),
    )  # fmt: skip
    pump.event("sensor_fault", reason="stuck", severity="warning", message=long("sf"))
    fan.event(
        "commissioning", active=True, severity="critical", reason="blind",
        commissioning=report("blind", message=long("cm")), score=None, threshold=None,
    )  # fmt: skip

    def alarms() -> dict[str, Any] | None:
        items: list[dict[str, Any]] = owner.api.get("/api/v1/alarms", params={"state": "open"}).json()
        kinds = {(a["device_id"], a["kind"]): a for a in items}
        return kinds.get((pump_id, "anomaly")) if any(d == fan_id for d, _ in kinds) else None

    anomaly = wait_until(alarms, timeout=20)
    acked = owner.api.post(f"/api/v1/alarms/{anomaly['id']}/ack", json={"note": long("no")})
    assert acked.status_code == 200, acked.text

    card = registry_kit.card(
        version="2.0.0", description=long("md"), lineage={"framework": long("lf"), "parent_model": mid("lp")}
    )
    model = owner.api.post("/api/v1/models", files=registry_kit.files(card))
    assert model.status_code == 201, model.text
    rollout = owner.api.post(
        "/api/v1/rollouts",
        json={"model_pk": model.json()["id"], "target": {"device_ids": [pump_id]}, "stages": [100]},
    )
    assert rollout.status_code == 201, rollout.text
    rollout_id = int(rollout.json()["id"])

    def sent() -> bool:
        detail = owner.api.get(f"/api/v1/rollouts/{rollout_id}").json()
        return any(d["state"] == "sent" for d in detail["device_states"])

    wait_until(sent, timeout=20)
    _ota_failed(pump, rollout_id, long("rr"))

    def failed() -> bool:
        detail = owner.api.get(f"/api/v1/rollouts/{rollout_id}").json()
        return any(d["state"] == "failed" for d in detail["device_states"])

    wait_until(failed, timeout=20)
    for device in (pump, fan):
        device.close()
    return {"owner": owner, "pump": pump_id, "fan": fan_id, "rollout": rollout_id}


@pytest.mark.needs("chromium")
@pytest.mark.slow
def test_hostile_text_from_users_and_devices_stays_text_on_every_page(
    page: Any, server: ServerProcess
) -> None:
    n = next(_n)
    seeded = _seed(server, n)
    owner: Org = seeded["owner"]
    watch = Watch(page)
    poked = 0

    _login(page, server, owner.email)
    poked += _clean(page, watch, "fleet", [mid("og"), mid("d1"), mid("d2")])

    page.goto(f"{server.url}/devices/{seeded['pump']}")
    _ready(page)
    page.locator("[data-testid='score-chart'] canvas").hover()  # the chart's tooltip
    poked += _clean(page, watch, "pump's page", [mid("d1"), long("sf"), long("ht")])

    page.goto(f"{server.url}/devices/{seeded['fan']}")
    _ready(page)
    poked += _clean(page, watch, "fan's page", [mid("d2"), long("cm")])

    page.goto(f"{server.url}/live")
    _ready(page)
    poked += _clean(page, watch, "live log", [long("sf"), long("ht")])

    page.goto(f"{server.url}/alarms")
    _ready(page)
    poked += _clean(page, watch, "open alarms", [long("cm")])
    page.locator("[data-testid='alarm-state']").get_by_text("Acknowledged").click()
    poked += _clean(page, watch, "acknowledged alarms", [long("ht"), long("no")])

    page.goto(f"{server.url}/stats")
    _ready(page)
    for canvas in page.locator("canvas").all():
        canvas.hover()
    poked += _clean(page, watch, "statistics", [])

    page.goto(f"{server.url}/account")
    _ready(page)
    members = [EMAIL_ATTR.lower(), EMAIL_HTML.lower()]
    poked += _clean(page, watch, "account", [mid("og"), short("ak"), *members])
    for email in members:  # the finding: a click on the member's row ran the handler
        page.get_by_text(email, exact=True).first.click()
    poked += _clean(page, watch, "account after clicking the members", [])

    page.goto(f"{server.url}/models")
    _ready(page)
    page.locator("[data-testid='show-card']").first.click()
    poked += _clean(page, watch, "model card", [long("md"), mid("lp")[:40]])

    page.goto(f"{server.url}/rollouts")
    _ready(page)
    poked += _clean(page, watch, "rollouts", [])
    page.goto(f"{server.url}/rollouts/{seeded['rollout']}")
    _ready(page)
    poked += _clean(page, watch, "rollout", [long("rr")])
    assert poked >= 15, f"only {poked} elements carried a payload: the seeding did not reach the pages"

    # the hostile member sees their own email in the header (the browser's email field refuses it:
    # sign in through the API and hand the browser the cookie)
    signed_in = httpx.post(
        f"{server.url}/api/v1/auth/login", json={"email": EMAIL_ATTR, "password": PASSWORD}
    )
    assert signed_in.status_code == 200, signed_in.text
    page.context.clear_cookies()
    page.context.add_cookies(
        [{"name": "edgefleet_session", "value": signed_in.json()["access_token"], "url": server.url}]
    )
    page.goto(f"{server.url}/account")
    _ready(page)
    _clean(page, watch, "the hostile member's account page", [EMAIL_ATTR.lower()])


@pytest.mark.needs("chromium")
@pytest.mark.slow
def test_links_to_the_sign_in_pages_cannot_inject(page: Any, server: ServerProcess) -> None:
    """Reflected: the login form's hidden `next` field, and the messages and values the sign-in pages
    take from their URL."""
    watch = Watch(page)
    page.goto(f"{server.url}/login?next={quote(NEXT)}&error={quote(long('er'))}&email={quote(long('ev'))}")
    _ready(page)
    _clean(page, watch, "login", [long("er")])
    assert page.locator("input[name=next]").get_attribute("value") == "/"
    assert page.locator("input[name=email]").input_value() == long("ev")
    page.goto(f"{server.url}/signup?email={quote(long('sv'))}&error={quote(mid('se'))}")
    _ready(page)
    _clean(page, watch, "signup", [mid("se")])
    page.goto(f"{server.url}/invite?token={quote(long('tv'))}&notice={quote(mid('in'))}")
    _ready(page)
    _clean(page, watch, "invite", [mid("in")])
    assert page.locator("input[name=token]").input_value() == long("tv")


@pytest.mark.slow
def test_sign_in_redirects_only_to_this_server(server: ServerProcess) -> None:
    """`next` after login: a path on this server, never another site (`/\\evil` is `//evil` to a
    browser) and nothing that could leave an attribute."""
    from edgefleet.dashboard.auth_routes import safe_next

    for target, expected in (
        ("/devices/a?x=1", "/devices/a?x=1"),
        ("//evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("/\\/evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\t/evil.example", "/"),
        ('/x" onclick="y', "/"),
        (NEXT, "/"),
        ("", "/"),
    ):
        assert safe_next(target) == expected, target
    n = next(_n)
    org = sign_up(server.url, f"redirect{n}@xss{n}.example", f"Redirects {n}")
    for target, expected in (("/stats?h=24", "/stats?h=24"), ("/\\evil.example/", "/")):
        response = httpx.post(
            f"{server.url}/ui/login",
            data={"email": org.email, "password": PASSWORD, "next": target},
            headers={"Origin": server.url},
        )
        assert response.status_code == 303, response.text
        assert response.headers["location"] == expected, target


# --- without a browser: the rule, kept by reading the dashboard's code -----------------------------
DASHBOARD = Path(__file__).resolve().parents[2] / "src" / "edgefleet" / "dashboard"
# Calls whose string argument NiceGUI parses or the browser runs: props strings (parsed into props,
# `:name` ones evaluated as JavaScript), HTML, Markdown, JavaScript, Vue templates.
SINKS = {"props", "html", "markdown", "run_javascript", "add_slot", "add_head_html", "add_body_html"}
REVIEWED = {  # (file, sink, what it is built from): not from users or devices
    ("pages/fleet.py", "html", "sparkline_svg"),  # numbers, and a label it escapes (test below)
    ("pages/rollout_views.py", "add_slot", "colors"),  # the fixed state -> colour table
    ("theme.py", "add_head_html", "HEAD_HTML + STYLE"),  # pwa.py's constants and the packaged theme.css
}


def _module_strings(tree: ast.Module) -> set[str]:
    return {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value.value, str)
    }


def _literal(node: ast.expr, constants: set[str]) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.IfExp):
        return _literal(node.body, constants) and _literal(node.orelse, constants)
    return isinstance(node, ast.Name) and node.id in constants


def _reviewed(file: str, sink: str, source: str) -> bool:
    return any(f == file and s == sink and what in source for f, s, what in REVIEWED)


def test_dashboard_code_never_builds_props_html_or_script_from_a_variable() -> None:
    """A props string, HTML, Markdown, JavaScript or a Vue template is a literal (or a module
    constant); values go in as props by key (`element.props[name] = value`), text as text."""
    found = []
    for path in sorted(DASHBOARD.rglob("*.py")):
        file = path.relative_to(DASHBOARD).as_posix()
        tree = ast.parse(path.read_text(), filename=str(path))
        constants = _module_strings(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            sink = node.func.attr
            if sink not in SINKS:
                continue
            texts = node.args[1:2] if sink == "add_slot" else node.args[:1]
            for text in texts:
                if _literal(text, constants):
                    continue
                source = ast.get_source_segment(path.read_text(), text) or ""
                if not _reviewed(file, sink, source):
                    found.append(f"{file}:{node.lineno} {sink}({source[:60]})")
            if any(k.arg == "js_handler" for k in node.keywords):
                found.append(f"{file}:{node.lineno} {sink}(js_handler=...)")
    assert found == [], "untrusted text could reach NiceGUI's parser or the browser:\n" + "\n".join(found)


def test_sparkline_escapes_its_label() -> None:
    svg = sparkline_svg([0.1, 0.5, 0.2], label=long("sp"))
    assert "<img" not in svg and "<script" not in svg and "&lt;img" in svg


def _keys(option: Any) -> Iterator[str]:
    if isinstance(option, dict):
        for key, value in option.items():
            yield str(key)
            yield from _keys(value)
    elif isinstance(option, list):
        for value in option:
            yield from _keys(value)


def _formatters(option: Any) -> Iterator[str]:
    if isinstance(option, dict):
        for key, value in option.items():
            if key == "formatter":
                yield str(value)
            yield from _formatters(value)
    elif isinstance(option, list):
        for value in option:
            yield from _formatters(value)


def test_chart_options_carry_names_as_data_never_as_templates_or_code() -> None:
    """ECharts formatters are templates (and NiceGUI evaluates `:key`s as JavaScript): what a device or
    a model card names goes into data fields only."""
    now = datetime.now(UTC)
    hostile = "9.9.9-{a}<img+src=x>"  # more than a version may hold: the chart must not care
    series = [
        VersionSeries("m", version, 0.3, 0.9, 1.5, 2.7, [DriftPoint(now - timedelta(hours=h), 0.5, 0.3, 0.8)])
        for version, h in (("1.0.0", 2), (hostile, 1))
    ]
    buckets = [{"bucket": now, "key": hostile, "count": 3}]
    options = [
        charts.drift_chart(series),
        charts.drift_score_chart(series),
        charts.stacked_bars("t", "u", buckets, "key"),
        charts.category_bars("t", "u", [(hostile, 0.5)]),
        charts.series_chart("t", "u", {hostile: [(now, 1.0)]}),
    ]
    for option in options:
        assert not [k for k in _keys(option) if k.startswith(":")]
        assert not [f for f in _formatters(option) if "img" in f or "{a}" in f]
