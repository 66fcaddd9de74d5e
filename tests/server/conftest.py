"""Fixtures for server tests: settings on a temporary SQLite file, an app client, users per role."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from edgefleet.server import ServerSettings, create_app

# Random-looking on purpose: the server refuses guessable secrets (about 128 bits needed).
SECRET = "w-9Z-9b7DgM6kV2sSb4zBe6dWosxVLfkezYhh-AhAxMifuKV"
OTHER_SECRET = "zx-ejejyndj-tW59FYlxspfh7BhL7Vkv9sMwohTSqSl7RSsF"
INGEST_PASSWORD = "ts6JUW0kSiuU3g4lJdk4mOr-vPEHc-nc1boEwNEuiOFPvE9q"
PASSWORD = "correct horse battery"


def make_settings(tmp_path: Path, **overrides: object) -> ServerSettings:
    values: dict[str, object] = {
        "db_url": f"sqlite:///{tmp_path / 'server.db'}",
        "broker": "none",
        "secret_key": SECRET,
        "ingest_password": INGEST_PASSWORD,
        "alarm_check_interval_s": 0.2,
        "allow_signup": True,  # off by default outside demo mode; the tests sign up organizations
        "operator_organization": 1,  # the first organization signed up reads /metrics
    }
    values.update(overrides)
    return ServerSettings.model_validate(values)


@pytest.fixture
def settings(tmp_path: Path) -> ServerSettings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: ServerSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@dataclass
class Account:
    email: str
    token: str
    org_id: int
    user_id: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def sign_up(client: TestClient, email: str, organization: str = "Plant") -> Account:
    response = client.post(
        "/api/v1/auth/signup", json={"email": email, "password": PASSWORD, "organization": organization}
    )
    assert response.status_code == 201, response.text
    token = response.json()["access_token"]
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
    client.cookies.clear()
    return Account(email, token, me["org_id"], me["id"])


def invite(client: TestClient, owner: Account, email: str, role: str) -> Account:
    response = client.post(
        "/api/v1/users/invites", json={"email": email, "role": role}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    accepted = client.post(
        "/api/v1/auth/invites/accept", json={"token": response.json()["token"], "password": PASSWORD}
    )
    assert accepted.status_code == 201, accepted.text
    token = accepted.json()["access_token"]
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
    client.cookies.clear()
    return Account(email, token, me["org_id"], me["id"])
