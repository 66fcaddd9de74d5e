"""Accounts: sign-up, login (cookie and bearer), rate limit, API keys, invites, roles, secrets."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from edgefleet.server import ServerSettings, create_app
from edgefleet.server.errors import ConfigError
from tests.server.conftest import OTHER_SECRET, PASSWORD, invite, make_settings, sign_up


def test_signup_creates_an_organization_with_its_owner(client: TestClient) -> None:
    owner = sign_up(client, "Ann@Example.com", "Mill 1")
    me = client.get("/api/v1/auth/me", headers=owner.headers).json()
    assert me["role"] == "owner" and me["email"] == "ann@example.com"
    org = client.get("/api/v1/organization", headers=owner.headers).json()
    assert org["name"] == "Mill 1"
    again = client.post(
        "/api/v1/auth/signup", json={"email": "ann@example.com", "password": PASSWORD, "organization": "X"}
    )
    assert again.status_code == 409


def test_weak_password_and_bad_email_are_refused(client: TestClient) -> None:
    short = client.post(
        "/api/v1/auth/signup", json={"email": "a@b.io", "password": "short", "organization": "X"}
    )
    assert short.status_code == 422
    bad = client.post(
        "/api/v1/auth/signup", json={"email": "nope", "password": PASSWORD, "organization": "X"}
    )
    assert bad.status_code == 422


def test_login_sets_an_httponly_cookie_that_authenticates(client: TestClient) -> None:
    sign_up(client, "bo@example.com")
    response = client.post("/api/v1/auth/login", json={"email": "bo@example.com", "password": PASSWORD})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert client.get("/api/v1/auth/me").status_code == 200  # the cookie alone
    assert client.post("/api/v1/auth/logout").status_code == 204
    assert client.get("/api/v1/auth/me").status_code == 401


def test_wrong_password_and_garbage_tokens_are_401(client: TestClient) -> None:
    sign_up(client, "cy@example.com")
    wrong = client.post("/api/v1/auth/login", json={"email": "cy@example.com", "password": "wrong password!"})
    assert wrong.status_code == 401
    unknown = client.post("/api/v1/auth/login", json={"email": "zz@example.com", "password": PASSWORD})
    assert unknown.status_code == 401
    assert unknown.json()["detail"] == wrong.json()["detail"]  # no account enumeration
    for token in ("garbage", "efk_not-a-key", "a.b.c"):
        assert client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_token_signed_with_another_secret_is_refused(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as first:
        account = sign_up(first, "dee@example.com")
    other = make_settings(tmp_path, secret_key=OTHER_SECRET)
    with TestClient(create_app(other)) as second:
        assert second.get("/api/v1/auth/me", headers=account.headers).status_code == 401


def test_login_is_rate_limited_per_account_and_per_address(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, login_limits="3/5 minutes", login_limits_per_address="5/5 minutes")
    with TestClient(create_app(settings)) as client:
        sign_up(client, "ed@example.com")
        for _ in range(3):
            bad = client.post("/api/v1/auth/login", json={"email": "ed@example.com", "password": "x" * 12})
            assert bad.status_code == 401
        blocked = client.post("/api/v1/auth/login", json={"email": "ed@example.com", "password": PASSWORD})
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0
        # other accounts from the same address still work until the address limit is reached
        for n in range(2):
            client.post("/api/v1/auth/login", json={"email": f"x{n}@example.com", "password": "x" * 12})
        by_address = client.post("/api/v1/auth/login", json={"email": "y@example.com", "password": "x" * 12})
        assert by_address.status_code == 429


def test_api_keys_authenticate_until_revoked(client: TestClient) -> None:
    owner = sign_up(client, "fay@example.com")
    created = client.post("/api/v1/auth/api-keys", json={"name": "script"}, headers=owner.headers)
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("efk_") and created.json()["prefix"] == key[:10]
    key_headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/auth/me", headers=key_headers).json()["email"] == "fay@example.com"
    listed = client.get("/api/v1/auth/api-keys", headers=owner.headers).json()
    assert "key" not in listed[0]
    assert client.delete(f"/api/v1/auth/api-keys/{listed[0]['id']}", headers=owner.headers).status_code == 204
    assert client.get("/api/v1/auth/me", headers=key_headers).status_code == 401


def test_invites_are_single_use_and_roles_apply(client: TestClient) -> None:
    owner = sign_up(client, "gil@example.com")
    viewer = invite(client, owner, "hal@example.com", "viewer")
    assert viewer.org_id == owner.org_id
    users = client.get("/api/v1/users", headers=viewer.headers).json()
    assert {u["email"]: u["role"] for u in users} == {"gil@example.com": "owner", "hal@example.com": "viewer"}
    created = client.post("/api/v1/users/invites", json={"email": "ivy@example.com"}, headers=owner.headers)
    token = created.json()["token"]
    assert (
        client.post("/api/v1/auth/invites/accept", json={"token": token, "password": PASSWORD}).status_code
        == 201
    )
    reused = client.post("/api/v1/auth/invites/accept", json={"token": token, "password": PASSWORD})
    assert reused.status_code == 401


def test_the_last_owner_cannot_be_demoted(client: TestClient) -> None:
    owner = sign_up(client, "jo@example.com")
    demote = client.patch(f"/api/v1/users/{owner.user_id}", json={"role": "admin"}, headers=owner.headers)
    assert demote.status_code == 409


def test_promoted_user_gets_the_new_role_at_once(client: TestClient) -> None:
    owner = sign_up(client, "kim@example.com")
    viewer = invite(client, owner, "lee@example.com", "viewer")
    body = {"id": "press-1"}
    assert client.post("/api/v1/devices", json=body, headers=viewer.headers).status_code == 403
    client.patch(f"/api/v1/users/{viewer.user_id}", json={"role": "admin"}, headers=owner.headers)
    assert client.post("/api/v1/devices", json=body, headers=viewer.headers).status_code == 201
    client.patch(f"/api/v1/users/{viewer.user_id}", json={"is_active": False}, headers=owner.headers)
    assert client.get("/api/v1/auth/me", headers=viewer.headers).status_code == 401


def test_default_secrets_are_refused_outside_demo_mode(tmp_path: Path) -> None:
    unsafe = ServerSettings(db_url=f"sqlite:///{tmp_path / 'x.db'}", broker="none")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        unsafe.require_safe()
    with pytest.raises(ConfigError), TestClient(create_app(unsafe)):
        pass
    ServerSettings(db_url=f"sqlite:///{tmp_path / 'x.db'}", broker="none", demo=True).require_safe()
    weak_ingest = make_settings(tmp_path, broker="mqtt://127.0.0.1:1", ingest_password="change-me-ingest")
    with pytest.raises(ConfigError, match="INGEST_PASSWORD"):
        weak_ingest.require_safe()


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEFLEET_DB_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("EDGEFLEET_BROKER", "mqtts://broker.example:8883")
    settings = ServerSettings()
    assert settings.db_url.startswith("postgresql") and settings.broker_mode == "external"
    monkeypatch.setenv("EDGEFLEET_BROKER", "http://nope")
    with pytest.raises(ValueError, match="broker"):
        ServerSettings()


def test_a_password_change_ends_the_sessions_issued_before_it(client: TestClient) -> None:
    owner = sign_up(client, "pat@example.com")
    other_browser = client.post(
        "/api/v1/auth/login", json={"email": "pat@example.com", "password": PASSWORD}
    ).json()["access_token"]
    client.cookies.clear()
    key = client.post("/api/v1/auth/api-keys", json={"name": "script"}, headers=owner.headers).json()["key"]

    def me(token: str) -> int:
        status: int = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code
        return status

    same = {"current_password": PASSWORD, "new_password": PASSWORD}
    assert client.post("/api/v1/auth/password", json=same, headers=owner.headers).status_code == 204
    assert (me(owner.token), me(other_browser)) == (200, 200)  # the same password again ends nothing
    client.cookies.clear()

    new = {"current_password": PASSWORD, "new_password": "a-brand-new-password"}
    changed = client.post("/api/v1/auth/password", json=new, headers=owner.headers)
    assert changed.status_code == 204
    assert (me(owner.token), me(other_browser)) == (401, 401)
    assert (
        "password was changed"
        in client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {other_browser}"}).json()[
            "detail"
        ]
    )
    assert client.get("/api/v1/auth/me").status_code == 200  # the caller's fresh session cookie
    assert me(key) == 200  # API keys are revoked one by one, not by a password change
    client.cookies.clear()
    relogin = client.post(
        "/api/v1/auth/login", json={"email": "pat@example.com", "password": new["new_password"]}
    )
    assert me(relogin.json()["access_token"]) == 200
