"""Events (filters, cursor pagination), telemetry, rollups, statistics, alarms, devices."""

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from pytest import MonkeyPatch

from edgefleet.server.context import ServerContext
from edgefleet.server.db.models import Alarm
from edgefleet.server.ingest import IngestStore
from tests.server import seed
from tests.server.conftest import Account, sign_up


def _setup(client: TestClient) -> tuple[Account, IngestStore]:
    owner = sign_up(client, "qa@example.com")
    context: ServerContext = client.app.state.edgefleet  # type: ignore[attr-defined]
    for device_id in ("m1", "m2"):
        assert (
            client.post("/api/v1/devices", json={"id": device_id}, headers=owner.headers).status_code == 201
        )
    return owner, IngestStore(context.sessions)


def test_events_filter_and_paginate_without_gaps_or_repeats(client: TestClient) -> None:
    owner, store = _setup(client)
    t0 = datetime(2026, 3, 1, 8, tzinfo=UTC)
    messages = [
        seed.anomaly("m1" if n % 3 else "m2", seq=n, ts=t0 + timedelta(minutes=n)) for n in range(1, 31)
    ]
    seed.ingest(store, *messages)
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {
            "limit": 7,
            "device_id": "m1",
            **({"cursor": cursor} if cursor else {}),
        }
        page = client.get("/api/v1/events", params=params, headers=owner.headers).json()
        seen += [e["seq"] for e in page["items"]]
        # a new event arriving mid-pagination must not shift the pages
        seed.ingest(store, seed.anomaly("m1", seq=1000 + len(seen), ts=t0 + timedelta(days=1)))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    expected = sorted((n for n in range(1, 31) if n % 3), reverse=True)
    assert seen == expected
    window = client.get(
        "/api/v1/events",
        params={
            "since": (t0 + timedelta(minutes=10)).isoformat(),
            "until": (t0 + timedelta(minutes=13)).isoformat(),
        },
        headers=owner.headers,
    ).json()
    assert sorted(e["seq"] for e in window["items"]) == [10, 11, 12]
    assert (
        client.get("/api/v1/events", params={"kind": "person"}, headers=owner.headers).json()["items"] == []
    )
    assert client.get("/api/v1/events", params={"cursor": "x"}, headers=owner.headers).status_code == 400
    assert client.get("/api/v1/events", params={"kind": "nope"}, headers=owner.headers).status_code == 422


def test_statistics_count_events_per_hour_and_device(client: TestClient) -> None:
    owner, store = _setup(client)
    t0 = datetime(2026, 3, 1, 8, tzinfo=UTC)
    seed.ingest(
        store,
        seed.anomaly("m1", ts=t0 + timedelta(minutes=1)),
        seed.anomaly("m1", ts=t0 + timedelta(minutes=59)),
        seed.anomaly("m1", ts=t0 + timedelta(minutes=61)),
        seed.anomaly("m2", ts=t0 + timedelta(minutes=2)),
    )
    params = {
        "bucket": "hour",
        "group_by": "device",
        "since": t0.isoformat(),
        "until": (t0 + timedelta(hours=3)).isoformat(),
    }
    stats = client.get("/api/v1/stats/events", params=params, headers=owner.headers).json()
    counts = {(c["bucket"][:13], c["key"]): c["count"] for c in stats["counts"]}
    assert counts == {("2026-03-01T08", "m1"): 2, ("2026-03-01T08", "m2"): 1, ("2026-03-01T09", "m1"): 1}
    by_day = client.get(
        "/api/v1/stats/events", params={**params, "bucket": "day", "group_by": "kind"}, headers=owner.headers
    )
    assert by_day.json()["counts"] == [{"bucket": "2026-03-01T00:00:00Z", "key": "anomaly", "count": 4}]


def test_overview_and_rollups(client: TestClient) -> None:
    owner, store = _setup(client)
    now = datetime.now(UTC)
    seed.ingest(
        store, seed.status("m1"), seed.telemetry("m1", 1, anomaly_rate=0.2, ts=now), seed.anomaly("m1")
    )
    overview = client.get("/api/v1/stats/overview", headers=owner.headers).json()
    assert overview["devices"] == 2 and overview["online"] == 1 and overview["open_alarms"] == 1
    assert overview["events"] == 1 and abs(overview["anomaly_rate"] - 0.2) < 1e-9
    rollups = client.get(
        "/api/v1/telemetry/rollups", params={"device_id": "m1"}, headers=owner.headers
    ).json()
    assert len(rollups) == 1 and rollups[0]["windows"] == 100 and abs(rollups[0]["anomaly_rate"] - 0.2) < 1e-9
    raw = client.get("/api/v1/devices/m1/telemetry", headers=owner.headers).json()
    assert [r["seq"] for r in raw] == [1]


def test_alarm_ack_and_clear_are_audit_logged(client: TestClient) -> None:
    owner, store = _setup(client)
    seed.ingest(store, seed.anomaly("m1"))
    alarm = client.get("/api/v1/alarms", params={"state": "open"}, headers=owner.headers).json()[0]
    acked = client.post(f"/api/v1/alarms/{alarm['id']}/ack", headers=owner.headers).json()
    assert acked["acked_by"] == owner.user_id
    assert (
        client.get("/api/v1/alarms", params={"state": "acknowledged"}, headers=owner.headers).json()[0]["id"]
        == alarm["id"]
    )
    cleared = client.post(f"/api/v1/alarms/{alarm['id']}/clear", headers=owner.headers).json()
    assert cleared["clear_reason"] == "user" and cleared["cleared_by"] == owner.user_id
    assert client.post(f"/api/v1/alarms/{alarm['id']}/ack", headers=owner.headers).status_code == 409
    actions = [e["action"] for e in client.get("/api/v1/organization/audit", headers=owner.headers).json()]
    assert "alarm.ack" in actions and "alarm.clear" in actions
    seed.ingest(store, seed.anomaly("m1"))  # a new anomaly opens a new alarm
    assert len(client.get("/api/v1/alarms", params={"state": "open"}, headers=owner.headers).json()) == 1


def test_alarm_changes_reach_the_stream_once_committed(client: TestClient, monkeypatch: MonkeyPatch) -> None:
    owner, store = _setup(client)
    context: ServerContext = client.app.state.edgefleet  # type: ignore[attr-defined]
    seed.ingest(store, seed.anomaly("m1"))
    alarm_id = client.get("/api/v1/alarms", params={"state": "open"}, headers=owner.headers).json()[0]["id"]
    seen: list[tuple[str, datetime | None, datetime | None]] = []

    def publish(org_id: int, type_: str, data: dict[str, Any]) -> None:
        # What a stream client reading the alarm back at this moment would find.
        with context.sessions() as session:
            alarm = session.get(Alarm, alarm_id)
            assert alarm is not None
            seen.append((data["change"], alarm.acked_at, alarm.cleared_at))

    monkeypatch.setattr(context.hub, "publish", publish)
    assert client.post(f"/api/v1/alarms/{alarm_id}/ack", headers=owner.headers).status_code == 200
    assert client.post(f"/api/v1/alarms/{alarm_id}/clear", headers=owner.headers).status_code == 200
    assert client.post(f"/api/v1/alarms/{alarm_id}/ack", headers=owner.headers).status_code == 409
    assert [change for change, _, _ in seen] == ["acknowledged", "cleared"]  # nothing for the refusal
    (_, acked_at, _), (_, _, cleared_at) = seen
    assert acked_at is not None and cleared_at is not None


def test_claim_tokens_are_one_time_and_expire(client: TestClient) -> None:
    owner = sign_up(client, "dev@example.com")
    created = client.post(
        "/api/v1/devices", json={"id": "cam-1", "kind": "camera"}, headers=owner.headers
    ).json()
    claim = {"device_id": "cam-1", "claim_token": created["claim_token"]}
    assert client.post("/api/v1/devices/claim", json={**claim, "claim_token": "wrong"}).status_code == 401
    first = client.post("/api/v1/devices/claim", json=claim)
    assert (
        first.status_code == 200
        and first.json()["username"] == "cam-1"
        and len(first.json()["password"]) >= 24
    )
    assert client.post("/api/v1/devices/claim", json=claim).status_code == 401
    assert client.post("/api/v1/devices", json={"id": "bad/id"}, headers=owner.headers).status_code == 422


def test_expired_claim_token_is_refused(client: TestClient) -> None:
    owner = sign_up(client, "exp@example.com")
    created = client.post("/api/v1/devices", json={"id": "old-1"}, headers=owner.headers).json()
    context: ServerContext = client.app.state.edgefleet  # type: ignore[attr-defined]
    with context.sessions() as session, session.begin():
        from edgefleet.server.db.models import Device

        device = session.get(Device, "old-1")
        assert device is not None
        device.claim_expires_at = datetime.now(UTC) - timedelta(seconds=1)
    response = client.post(
        "/api/v1/devices/claim", json={"device_id": "old-1", "claim_token": created["claim_token"]}
    )
    assert response.status_code == 401


def test_deleting_a_device_keeps_or_removes_its_data(client: TestClient) -> None:
    owner, store = _setup(client)
    seed.ingest(store, seed.anomaly("m1"), seed.anomaly("m2"))
    assert client.delete("/api/v1/devices/m1", headers=owner.headers).status_code == 204
    assert (
        client.delete("/api/v1/devices/m2", params={"keep_data": False}, headers=owner.headers).status_code
        == 204
    )
    kept = client.get("/api/v1/events", headers=owner.headers).json()["items"]
    assert [e["device_id"] for e in kept] == ["m1"]
    assert client.get("/api/v1/devices/m1", headers=owner.headers).status_code == 404
