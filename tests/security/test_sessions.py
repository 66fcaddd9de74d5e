"""Session and browser hygiene (issue 18, finding 7): logout revokes the token on the server; the
stream's `?token=` stays out of the logs; cross-site requests with the session cookie are refused
(sign-in forms, logout, cookie-authenticated body-less POSTs, the stream's WebSocket); the cookie is
`Secure` behind TLS by default; security headers (CSP with frame-ancestors) that the dashboard still
works under; a SQLite database only its owner can read."""

import contextlib
import http.server
import io
import logging
import os
import stat
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from starlette.websockets import WebSocketDisconnect

from edgefleet.dashboard import auth_routes
from edgefleet.dashboard.session import Viewer, principal_of
from edgefleet.server import ServerSettings, create_app, security
from edgefleet.server.api.browser_security import RedactUrlSecrets, origin_of, redact
from edgefleet.server.db import make_engine, transaction, upgrade
from edgefleet.server.errors import AuthError
from tests.dashboard.stack import PASSWORD as STACK_PASSWORD
from tests.dashboard.stack import ServerProcess, sign_up
from tests.server import registry_kit
from tests.server.conftest import PASSWORD, SECRET, make_settings
from tests.server.conftest import sign_up as api_sign_up
from tests.support.services import free_port

EVIL = "http://evil.example"
SAME = "http://testserver"  # TestClient's own origin


def _app(settings: ServerSettings) -> FastAPI:
    """The server app with the dashboard's form routes (no NiceGUI pages: one UI per process)."""
    app = create_app(settings)
    app.include_router(auth_routes.router)
    return app


@pytest.fixture
def settings(tmp_path: Path) -> ServerSettings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: ServerSettings) -> Iterator[TestClient]:
    with TestClient(_app(settings)) as test_client:
        yield test_client


def _me(client: TestClient, token: str) -> int:
    client.cookies.clear()
    response: httpx.Response = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    return response.status_code


def _login(client: TestClient, email: str) -> str:
    response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


# --- logout revokes ------------------------------------------------------------------------------
def test_logout_revokes_that_session_on_the_server_and_no_other(client: TestClient) -> None:
    account = api_sign_up(client, "ann@example.com")
    other = _login(client, account.email)
    client.cookies.clear()
    assert _me(client, account.token) == 200
    out = client.post("/api/v1/auth/logout", headers=account.headers)
    assert out.status_code == 204
    assert _me(client, account.token) == 401  # a copy of the token (a script, a thief) is dead too
    assert "logged out" in client.get("/api/v1/auth/me", headers=account.headers).json()["detail"]
    assert _me(client, other) == 200  # the user's other sessions stay
    again = client.post("/api/v1/auth/logout", headers=account.headers)
    assert again.status_code == 204  # logging out twice is no error

    cookie_token = _login(client, account.email)  # the browser's way: the cookie alone
    assert client.get("/api/v1/auth/me").status_code == 200
    assert client.post("/api/v1/auth/logout").status_code == 204
    assert _me(client, cookie_token) == 401


def test_a_token_from_before_revocation_existed_ends_all_sessions_of_its_user(client: TestClient) -> None:
    account = api_sign_up(client, "bo@example.com")
    now = datetime.now(UTC)
    legacy = jwt.encode(  # no `jti`: what this server issued before
        {
            "sub": str(account.user_id),
            "org": account.org_id,
            "sep": 0,
            "iat": now,
            "exp": now + timedelta(hours=1),
        },
        SECRET,
        algorithm="HS256",
    )
    assert _me(client, legacy) == 200
    assert (
        client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {legacy}"}).status_code == 204
    )
    assert _me(client, legacy) == 401
    assert _me(client, account.token) == 401  # it cannot be told from the others: all ended
    assert _me(client, _login(client, account.email)) == 200


def test_api_keys_survive_logout(client: TestClient) -> None:
    account = api_sign_up(client, "cy@example.com")
    key = client.post("/api/v1/auth/api-keys", json={"name": "ci"}, headers=account.headers).json()["key"]
    headers = {"Authorization": f"Bearer {key}"}
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200  # revoked by id, not by logout


def test_dashboard_logout_form_revokes_and_open_pages_stop_acting(
    client: TestClient, settings: ServerSettings
) -> None:
    account = api_sign_up(client, "dee@example.com")
    token = _login(client, account.email)  # the cookie
    claims = security.read_token(settings.secret_key.get_secret_value(), token)
    viewer = Viewer(account.user_id, account.org_id, account.email, "owner", "Plant", claims)
    context = client.app.state.edgefleet  # type: ignore[attr-defined]
    with transaction(context.sessions) as session:
        assert principal_of(session, viewer).user.id == account.user_id
    out = client.post("/ui/logout", headers={"Origin": SAME}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert _me(client, token) == 401
    with pytest.raises(AuthError, match="logged out"), transaction(context.sessions) as session:
        principal_of(session, viewer)  # a page still open in another tab: its buttons stop working


def test_revoked_rows_are_deleted_once_the_token_would_have_expired(tmp_path: Path) -> None:
    with TestClient(_app(make_settings(tmp_path, jwt_ttl_s=1))) as client:
        account = api_sign_up(client, "eve@example.com")
        assert client.post("/api/v1/auth/logout", headers=account.headers).status_code == 204
        time.sleep(1.2)
        second = _login(client, account.email)
        client.cookies.clear()
        assert (
            client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {second}"}).status_code
            == 204
        )
        context = client.app.state.edgefleet  # type: ignore[attr-defined]
        with context.sessions() as session:
            assert _revoked(session) == 1  # the first one expired and was purged


def _revoked(session: Session) -> int:
    from sqlalchemy import func, select

    from edgefleet.server.db.models import RevokedToken

    return int(session.scalar(select(func.count()).select_from(RevokedToken)) or 0)


# --- cross-site request forgery ------------------------------------------------------------------
def _form_login(client: TestClient, email: str, **headers: str) -> httpx.Response:
    client.cookies.clear()
    response: httpx.Response = client.post(
        "/ui/login", data={"email": email, "password": PASSWORD}, headers=headers, follow_redirects=False
    )
    return response


def test_sign_in_forms_refuse_other_origins(client: TestClient) -> None:
    account = api_sign_up(client, "fay@example.com")
    for headers in (
        {"Origin": EVIL},
        {"Origin": "null"},  # a sandboxed frame, a data: URL, a no-referrer cross-site post
        {"Referer": f"{EVIL}/login"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://testserver.evil.example"},
    ):
        refused = _form_login(client, account.email, **headers)
        assert refused.status_code == 403, headers
        assert "set-cookie" not in refused.headers and "cross-site" in refused.json()["detail"]
    assert _form_login(client, account.email, Origin=SAME).status_code == 303
    # plain HTTP here, https in the browser: a TLS proxy on this host the server does not know of
    assert _form_login(client, account.email, Origin="https://testserver").status_code == 303
    assert _form_login(client, account.email, Referer=f"{SAME}/login?next=/").status_code == 303
    assert _form_login(client, account.email).status_code == 303  # no browser: curl, a test client
    signup = client.post(
        "/ui/signup",
        data={"email": "mal@example.com", "password": PASSWORD, "organization": "Forged"},
        headers={"Origin": EVIL},
        follow_redirects=False,
    )
    assert signup.status_code == 403
    assert (
        client.post("/api/v1/auth/login", json={"email": "mal@example.com", "password": PASSWORD}).status_code
        == 401
    )


def test_cookie_authenticated_changes_need_this_servers_origin_bearer_requests_do_not(
    client: TestClient,
) -> None:
    account = api_sign_up(client, "gil@example.com")
    first = registry_kit.upload(client, account, card_data=registry_kit.card(version="1.0.0"))
    second = registry_kit.upload(client, account, card_data=registry_kit.card(version="2.0.0"))
    assert first.status_code == second.status_code == 201, first.text
    pk_1, pk_2 = first.json()["id"], second.json()["id"]

    _login(client, account.email)  # the cookie, as a browser holds it
    forged = client.post(f"/api/v1/models/{pk_2}/default", headers={"Origin": EVIL})  # no body: a form can
    assert forged.status_code == 403
    assert client.post(f"/api/v1/models/{pk_2}/default", headers={"Referer": f"{EVIL}/x"}).status_code == 403
    assert client.post("/api/v1/auth/logout", headers={"Origin": EVIL}).status_code == 403
    assert client.get("/api/v1/auth/me").status_code == 200  # reading is not a change
    assert client.post(f"/api/v1/models/{pk_2}/default", headers={"Origin": SAME}).status_code == 200
    # Basic credentials a browser remembered are sent cross-site by themselves: still checked
    basic = {"Authorization": "Basic ZGV2aWNlOnNlY3JldA==", "Origin": EVIL}
    assert client.post(f"/api/v1/models/{pk_1}/default", headers=basic).status_code == 403
    # a bearer token or an API key is no ambient authority: no check
    client.cookies.clear()
    assert (
        client.post(f"/api/v1/models/{pk_1}/default", headers={**account.headers, "Origin": EVIL}).status_code
        == 200
    )


def test_public_url_and_trusted_origins_are_this_servers(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, public_url="https://edge.example.com", trusted_origins=["https://ops.example.com:8443"]
    )
    with TestClient(_app(settings)) as client:
        account = api_sign_up(client, "hal@example.com")
        for origin, expected in (
            ("https://edge.example.com", 303),  # behind a proxy that rewrites Host
            ("https://edge.example.com:443", 303),
            ("https://ops.example.com:8443", 303),
            ("https://ops.example.com", 403),
            ("http://edge.example.com", 403),
        ):
            assert _form_login(client, account.email, Origin=origin).status_code == expected, origin
    with TestClient(_app(make_settings(tmp_path)), base_url="https://testserver") as tls:
        account = api_sign_up(tls, "hal2@example.com")
        assert _form_login(tls, account.email, Origin="https://testserver").status_code == 303
        assert _form_login(tls, account.email, Origin="http://testserver").status_code == 403  # downgrade


def test_the_streams_websocket_refuses_cross_site_pages_with_the_cookie(client: TestClient) -> None:
    account = api_sign_up(client, "ida@example.com")
    _login(client, account.email)
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect("/api/v1/stream", headers={"Origin": EVIL}) as ws,
    ):
        ws.receive_json()
    assert refused.value.code == 1008
    with client.websocket_connect("/api/v1/stream", headers={"Origin": SAME}):
        pass
    client.cookies.clear()
    with client.websocket_connect("/api/v1/stream", headers={**account.headers, "Origin": EVIL}):
        pass  # a bearer token is not ambient: a page had to know it


def test_origins_are_compared_normalized() -> None:
    assert origin_of("HTTP://Example.COM:80/path?q") == "http://example.com"
    assert origin_of("https://example.com:443") == "https://example.com"
    assert origin_of("https://[::1]:8443/") == "https://[::1]:8443"
    for opaque in ("null", "file:///etc", "javascript:alert(1)", "", "http://", "http://a:99999"):
        assert origin_of(opaque) is None, opaque


# --- the Secure flag -----------------------------------------------------------------------------
def _cookie(client: TestClient, email: str) -> str:
    response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    cookie: str = response.headers["set-cookie"]
    return cookie


@pytest.mark.parametrize(
    ("overrides", "base_url", "secure"),
    [
        ({}, "http://testserver", False),  # plain HTTP on the loopback (the demo)
        ({"public_url": "https://edge.example.com"}, "http://testserver", True),  # TLS ends at a proxy
        ({}, "https://testserver", True),  # TLS to this server (or a trusted proxy's X-Forwarded-Proto)
        ({"cookie_secure": False}, "https://testserver", False),  # forced off
        ({"cookie_secure": True}, "http://testserver", True),
    ],
)
def test_the_session_cookie_is_secure_behind_tls_by_default(
    tmp_path: Path, overrides: dict[str, Any], base_url: str, secure: bool
) -> None:
    with TestClient(_app(make_settings(tmp_path, **overrides)), base_url=base_url) as client:
        account = api_sign_up(client, "jo@example.com")
        cookie = _cookie(client, account.email)
        assert ("secure" in cookie.lower()) is secure, cookie
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_an_untrusted_x_forwarded_proto_does_not_count(tmp_path: Path) -> None:
    """The app takes the scheme from uvicorn, which honours X-Forwarded-Proto only from its trusted
    proxies; the header itself is never read."""
    with TestClient(_app(make_settings(tmp_path))) as client:
        account = api_sign_up(client, "kim@example.com")
        response = client.post(
            "/api/v1/auth/login",
            json={"email": account.email, "password": PASSWORD},
            headers={"X-Forwarded-Proto": "https"},
        )
        assert "secure" not in response.headers["set-cookie"].lower()


# --- headers -------------------------------------------------------------------------------------
def test_every_response_has_the_security_headers(tmp_path: Path) -> None:
    with TestClient(_app(make_settings(tmp_path)), base_url="https://testserver") as client:
        for path in ("/healthz", "/api/v1/auth/me", "/openapi.json", "/nowhere"):
            headers = client.get(path).headers
            csp = headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, path
            assert "default-src 'self'" in csp and "connect-src 'self'" in csp, path
            assert headers["x-frame-options"] == "DENY"
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["referrer-policy"] == "same-origin"
            assert headers["strict-transport-security"].startswith("max-age=")
        docs = client.get("/docs").headers["content-security-policy"]
        assert "https://cdn.jsdelivr.net" in docs and "frame-ancestors 'none'" in docs
    with TestClient(_app(make_settings(tmp_path))) as plain:
        assert "strict-transport-security" not in plain.get("/healthz").headers  # only over TLS


# --- secrets in URLs -----------------------------------------------------------------------------
def test_url_secrets_are_redacted_in_log_records() -> None:
    assert redact("GET /api/v1/stream?cursor=3&token=eyJ.abc.def HTTP/1.1") == (
        "GET /api/v1/stream?cursor=3&token=[redacted] HTTP/1.1"
    )
    assert redact("/api/v1/stream?ticket=abc") == "/api/v1/stream?ticket=[redacted]"
    assert redact("/api/v1/events?device_id=token=1") == "/api/v1/events?device_id=token=1"
    stream = io.StringIO()
    logger = logging.getLogger("tests.security.redaction")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.addFilter(RedactUrlSecrets())
    try:
        logger.warning('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", "/api/v1/stream?token=eyJsecret")
    finally:
        logger.removeHandler(handler)
    assert "eyJsecret" not in stream.getvalue() and "token=[redacted]" in stream.getvalue()


def test_the_streams_token_is_not_in_the_servers_log(server: ServerProcess) -> None:
    from websockets.sync.client import connect

    org = sign_up(server.url, "logs@tokens.example", "Logs")
    url = server.url.replace("http://", "ws://") + f"/api/v1/stream?cursor=0&token={org.token}"
    with connect(url, open_timeout=10):
        pass
    org.api.get("/api/v1/events", params={"token": org.token})  # an HTTP access line too

    def flat_log() -> str:  # the console handler wraps long lines: join them back
        return "".join(server.logs().split())

    deadline = time.monotonic() + 10
    while flat_log().count("token=[redacted]") < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    text = flat_log()
    assert org.token not in text and org.token[-16:] not in text
    assert "/api/v1/stream?cursor=0&token=[redacted]" in text
    assert "/api/v1/events?token=[redacted]" in text


# --- the browser: a page of another origin, and the dashboard under its CSP -----------------------
@contextlib.contextmanager
def _attacker_site(html: str) -> Iterator[str]:
    """A page on another port of the same host: another origin, but the same site, so the browser
    sends the SameSite=Lax session cookie with its top-level form posts."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            return None

    port = free_port()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Page)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _browser_login(page: Any, server: ServerProcess, email: str) -> None:
    page.goto(f"{server.url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", STACK_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/")
    page.wait_for_function("window.did_handshake === true")


@pytest.mark.needs("chromium")
@pytest.mark.slow
def test_a_page_of_another_origin_cannot_post_with_the_users_cookie(page: Any, server: ServerProcess) -> None:
    org = sign_up(server.url, "csrf@victim.example", "Victim")
    pks = []
    for version in ("1.0.0", "2.0.0"):
        response = org.api.post(
            "/api/v1/models", files=registry_kit.files(registry_kit.card(version=version))
        )
        assert response.status_code == 201, response.text
        pks.append(response.json()["id"])
    org.api.post(f"/api/v1/models/{pks[0]}/default").raise_for_status()
    _browser_login(page, server, org.email)

    def default_pk() -> int:
        models = org.api.get("/api/v1/models").json()
        return int(next(m["id"] for m in models if m["is_default"]))

    forms = (
        ("set-default", f"{server.url}/api/v1/models/{pks[1]}/default"),  # body-less, cookie-authenticated
        ("logout", f"{server.url}/ui/logout"),
    )
    for name, action in forms:
        html = f'<form id="f" method="post" action="{action}"></form><script>f.submit()</script>'
        with _attacker_site(html) as attacker:
            with page.expect_response(action) as answer:
                page.goto(attacker)
            assert answer.value.status == 403, f"{name}: {answer.value.status}"
    assert default_pk() == pks[0]  # the forged post changed nothing
    page.goto(f"{server.url}/account")
    page.wait_for_function("window.did_handshake === true")
    assert page.url == f"{server.url}/account"  # and did not log the user out


CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


@pytest.mark.needs("chromium")
@pytest.mark.slow
def test_the_dashboard_works_under_its_content_security_policy(page: Any, server: ServerProcess) -> None:
    org = sign_up(server.url, "csp@plant.example", "CSP plant")
    org.add_device("csp-1", "Press 1")
    page.context.add_init_script(CSP_WATCH)
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text) if "Content Security Policy" in m.text else None)
    response = page.goto(f"{server.url}/login")
    assert response is not None and "frame-ancestors 'none'" in response.headers["content-security-policy"]
    _browser_login(page, server, org.email)
    page.locator("[data-device-id='csp-1']").wait_for()
    for path in ("/devices/csp-1", "/live", "/stats", "/alarms", "/models", "/rollouts", "/devices/new"):
        page.goto(f"{server.url}{path}")
        page.wait_for_function("window.did_handshake === true")
        page.wait_for_timeout(300)
        assert page.evaluate("window.__cspViolations") == [], path
    # a WebSocket event round trip (the socket is 'self' to connect-src): create an API key
    page.goto(f"{server.url}/account")
    page.wait_for_function("window.did_handshake === true")
    page.locator("[data-testid='key-name'] input, input[data-testid='key-name']").first.fill("csp")
    page.locator("[data-testid='create-key']").click()
    assert page.locator("[data-testid='api-key-secret']").inner_text().startswith("efk_")
    assert page.evaluate("window.__cspViolations") == [] and messages == []


# --- the database file ---------------------------------------------------------------------------
@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_sqlite_database_and_its_wal_are_private(tmp_path: Path) -> None:
    database = tmp_path / "data" / "edgefleet.db"
    with _umask(0o022):  # the usual umask: new files 0644
        engine = make_engine(f"sqlite:///{database}")
        upgrade(engine)
        with engine.connect() as connection:  # the -wal and -shm exist while a connection is open
            companions = [database.with_name(database.name + s) for s in ("-wal", "-shm")]
            assert all(p.exists() for p in companions)
            for path in (database, *companions):
                assert _mode(path) & 0o077 == 0, f"{path.name}: {_mode(path):o}"
            connection.close()
        engine.dispose()


def test_an_existing_world_readable_database_is_narrowed(tmp_path: Path) -> None:
    database = tmp_path / "old.db"
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    engine.dispose()
    database.chmod(0o644)
    make_engine(f"sqlite:///{database}").dispose()
    assert _mode(database) == 0o600
