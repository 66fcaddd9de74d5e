"""Bad input gets a 4xx that says what is wrong, never a 500 (issue 18, finding 5).

Each case here answered 500 before: numbers past 64 bits reached SQLite (OverflowError), dates out of
range or without a zone reached the database layer, and NaN/Infinity (which Python's JSON parser
accepts) made the 422 answer itself unserialisable or the command unsendable.
"""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from edgefleet.server import create_app
from tests.server.conftest import Account, make_settings, sign_up

HUGE = 10**30
TIME_ROUTES = [
    "/api/v1/events",
    "/api/v1/stats/events",
    "/api/v1/stats/overview",
    "/api/v1/telemetry/rollups",
    "/api/v1/devices/press-1/telemetry",
    "/api/v1/drift/devices/press-1",
    "/api/v1/samples",
]
BAD_TIMES = [
    "0001-01-01",  # before 1900 (and year 0 once a zone is applied)
    "0001-01-01T00:00:00+01:00",  # out of range once converted to UTC
    "9999-12-31T23:59:59-01:00",  # past year 9999 once converted to UTC
]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Account]]:
    tmp_path: Path = tmp_path_factory.mktemp("bad-input")
    with TestClient(create_app(make_settings(tmp_path)), raise_server_exceptions=False) as client:
        owner = sign_up(client, "owner@example.com")
        assert (
            client.post("/api/v1/devices", json={"id": "press-1"}, headers=owner.headers).status_code == 201
        )
        yield client, owner


def _assert_4xx(response: object, *, status: int | None = None) -> dict[str, object]:
    from httpx import Response

    assert isinstance(response, Response)
    assert 400 <= response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
    if status is not None:
        assert response.status_code == status, response.text
    body = json.loads(response.text)  # always a JSON answer with a reason
    assert isinstance(body, dict) and body.get("detail"), body
    return body


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/v1/events/{HUGE}"),
        ("GET", f"/api/v1/models/{HUGE}"),
        ("GET", f"/api/v1/models/{HUGE}/manifest"),
        ("POST", f"/api/v1/models/{HUGE}/default"),
        ("GET", f"/api/v1/models/compare?a={HUGE}&b=1"),
        ("GET", f"/api/v1/rollouts/{HUGE}"),
        ("POST", f"/api/v1/rollouts/{HUGE}/pause"),
        ("POST", f"/api/v1/alarms/{HUGE}/ack"),
        ("PATCH", f"/api/v1/users/{HUGE}"),
        ("DELETE", f"/api/v1/users/{HUGE}"),
        ("DELETE", f"/api/v1/auth/api-keys/{HUGE}"),
        ("GET", f"/api/v1/events?cursor={HUGE}"),
        ("GET", f"/api/v1/samples?cursor={HUGE}"),
    ],
)
def test_numbers_past_64_bits_are_refused(api: tuple[TestClient, Account], method: str, path: str) -> None:
    client, owner = api
    body = {"role": "viewer"} if method == "PATCH" else None
    _assert_4xx(client.request(method, path, json=body, headers=owner.headers), status=422)


def test_a_number_past_64_bits_in_a_body_is_refused(api: tuple[TestClient, Account]) -> None:
    client, owner = api
    body = {"model_pk": HUGE, "target": {"tag": "line-1"}}
    _assert_4xx(client.post("/api/v1/rollouts", json=body, headers=owner.headers), status=422)


@pytest.mark.parametrize("path", TIME_ROUTES)
@pytest.mark.parametrize("when", BAD_TIMES)
@pytest.mark.parametrize("name", ["since", "until"])
def test_times_out_of_range_are_refused(
    api: tuple[TestClient, Account], path: str, when: str, name: str
) -> None:
    client, owner = api
    body = _assert_4xx(client.get(path, params={name: when}, headers=owner.headers), status=422)
    assert "time" in json.dumps(body["detail"])


@pytest.mark.parametrize("path", TIME_ROUTES)
def test_times_without_a_zone_are_utc(api: tuple[TestClient, Account], path: str) -> None:
    client, owner = api
    response = client.get(
        path, params={"since": "2026-01-01T00:00:00", "until": "2026-01-02T00:00:00"}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    if path.startswith("/api/v1/drift/devices/"):
        assert response.json()["since"] == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("method", "path", "raw"),
    [
        ("POST", "/api/v1/rollouts", '{"model_pk": NaN, "target": {"tag": "x"}}'),
        ("POST", "/api/v1/rollouts", '{"model_pk": 1, "gate_s": NaN, "target": {"tag": "x"}}'),
        ("POST", "/api/v1/rollouts", '{"model_pk": 1, "gate_s": Infinity, "target": {"tag": "x"}}'),
        ("PATCH", "/api/v1/organization", '{"event_retention_days": NaN}'),
        ("PATCH", "/api/v1/organization", '{"telemetry_retention_days": -Infinity}'),
        ("POST", "/api/v1/auth/login", '{"email": NaN, "password": "x"}'),
        ("POST", "/api/v1/devices", '{"id": Infinity}'),
    ],
)
def test_nan_and_infinity_in_json_get_a_422_that_can_be_read(
    api: tuple[TestClient, Account], method: str, path: str, raw: str
) -> None:
    client, owner = api
    headers = {**owner.headers, "Content-Type": "application/json"}
    body = _assert_4xx(client.request(method, path, content=raw, headers=headers), status=422)
    assert isinstance(body["detail"], list) and body["detail"][0]["loc"][0] == "body"


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_nan_in_command_args_is_refused(api: tuple[TestClient, Account], value: str) -> None:
    client, owner = api
    headers = {**owner.headers, "Content-Type": "application/json"}
    raw = '{"command": "recommission", "args": {"gain": %s}}' % value  # noqa: UP031
    body = _assert_4xx(
        client.post("/api/v1/devices/press-1/commands", content=raw, headers=headers), status=422
    )
    assert "finite" in str(body["detail"])


def test_command_args_the_device_contract_refuses_are_a_422(api: tuple[TestClient, Account]) -> None:
    client, owner = api
    body = {"command": "recommission", "args": {"gain ratio!": 1}}
    response = client.post("/api/v1/devices/press-1/commands", json=body, headers=owner.headers)
    assert "device contract" in str(_assert_4xx(response, status=422)["detail"])


def test_unpaired_surrogates_are_a_4xx(api: tuple[TestClient, Account]) -> None:
    client, owner = api
    headers = {**owner.headers, "Content-Type": "application/json"}
    for path, raw in [
        ("/api/v1/auth/login", '{"email": "a@b.cd", "password": "\\ud800xxxxxxxxxx"}'),
        ("/api/v1/devices", '{"id": "press-9", "name": "\\udc00"}'),
        ("/api/v1/organization", '{"name": "Plant \\ud800"}'),
    ]:
        method = "PATCH" if path.endswith("organization") else "POST"
        _assert_4xx(client.request(method, path, content=raw, headers=headers))
