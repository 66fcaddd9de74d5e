"""`/metrics`: Prometheus text for the scrape token and for the operator organization's admins (the
tests' first organization, `make_settings`), nobody else."""

from pathlib import Path

from fastapi.testclient import TestClient

from edgefleet.server import create_app
from tests.server.conftest import PASSWORD, invite, make_settings, sign_up

SCRAPE_TOKEN = "scrape-token-for-tests-0123456789"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_metrics_need_the_scrape_token_or_an_admin(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, metrics_token=SCRAPE_TOKEN)
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "owner@example.com")
        admin = invite(client, owner, "admin@example.com", "admin")
        viewer = invite(client, owner, "viewer@example.com", "viewer")
        key = client.post("/api/v1/auth/api-keys", json={"name": "prom"}, headers=admin.headers).json()["key"]

        for headers in (owner.headers, admin.headers, _bearer(key), _bearer(SCRAPE_TOKEN)):
            response = client.get("/metrics", headers=headers)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            assert "edgefleet_ingest_messages_total" in response.text

        anonymous = client.get("/metrics")
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
        assert client.get("/metrics", headers=_bearer("not-the-token")).status_code == 401
        assert client.get("/metrics", headers=_bearer(SCRAPE_TOKEN + "x")).status_code == 401
        forbidden = client.get("/metrics", headers=viewer.headers)
        assert forbidden.status_code == 403 and "edgefleet_" not in forbidden.text

        # the browser session cookie of an admin works too
        login = client.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD})
        assert login.status_code == 200
        assert client.get("/metrics").status_code == 200
        client.cookies.clear()


def test_without_a_scrape_token_only_admins_read_metrics(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path))) as client:
        owner = sign_up(client, "owner@example.com")
        assert client.get("/metrics", headers=owner.headers).status_code == 200
        assert client.get("/metrics", headers=_bearer("")).status_code == 401
        assert client.get("/metrics", headers=_bearer("guess")).status_code == 401
