"""The rollouts API: validation, targets (kind, tag, list), detail with stages and devices, pause,
resume, abort, device tags, audit, and organization isolation."""

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from edgefleet.server.context import ServerContext
from edgefleet.server.db import transaction
from edgefleet.server.db.models import Device
from tests.server import registry_kit, seed
from tests.server.conftest import Account, invite, sign_up


def _context(client: TestClient) -> ServerContext:
    context: ServerContext = client.app.state.edgefleet  # type: ignore[attr-defined]
    return context


def _devices(client: TestClient, org_id: int, prefix: str, n: int, kind: str = "vibration") -> list[str]:
    sessions = _context(client).sessions
    ids = [f"{prefix}-{i:02d}" for i in range(n)]
    for device_id in ids:
        seed.add_device(sessions, org_id, device_id)
    with transaction(sessions) as session:
        for device_id in ids:
            device = session.get(Device, device_id)
            assert device is not None
            device.claimed_at, device.kind = datetime.now(UTC), kind
    return ids


def _model(client: TestClient, account: Account, version: str = "2.0.0", kind: str = "vibration") -> int:
    response = registry_kit.upload(
        client, account, card_data=registry_kit.card(version=version, device_kind=kind)
    )
    assert response.status_code == 201, response.text
    model_pk: int = response.json()["id"]
    return model_pk


@pytest.fixture
def owner(client: TestClient) -> Account:
    return sign_up(client, "owner@plant.example")


def _create(client: TestClient, account: Account, **body: Any) -> Any:
    return client.post("/api/v1/rollouts", json=body, headers=account.headers)


def test_create_then_read_with_stages_and_devices(client: TestClient, owner: Account) -> None:
    devices = _devices(client, owner.org_id, "m", 20)
    model_pk = _model(client, owner)
    response = _create(client, owner, model_pk=model_pk, target={"device_kind": "vibration"}, gate_s=30)
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["state"], created["stage"], created["stages"]) == ("running", 0, [5, 25, 100])
    assert (created["model_id"], created["model_version"]) == ("press-ae", "2.0.0")
    assert created["devices"] == 20 and created["counts"] == {"pending": 20} and created["failures"] == 0
    assert [(s["percent"], s["devices"], s["state"]) for s in created["stage_summary"]] == [
        (5, 1, "active"),
        (25, 4, "waiting"),
        (100, 15, "waiting"),
    ]
    assert sorted(d["device_id"] for d in created["device_states"]) == devices
    assert [d["position"] for d in created["device_states"]] == list(range(20))

    detail = client.get(f"/api/v1/rollouts/{created['id']}", headers=owner.headers).json()
    assert detail == created
    listed = client.get("/api/v1/rollouts", headers=owner.headers).json()
    assert [r["id"] for r in listed] == [created["id"]] and "device_states" not in listed[0]
    audit = client.get("/api/v1/organization/audit", headers=owner.headers).json()
    assert any(a["action"] == "rollout.create" and a["detail"]["devices"] == 20 for a in audit)


@pytest.mark.parametrize(
    "change",
    [
        {"stages": [25, 5, 100]},
        {"stages": [5, 25, 90]},
        {"stages": [5, 5, 100]},
        {"stages": []},
        {"stages": [0, 100]},
        {"target": {}},
        {"target": {"device_kind": "vibration", "tag": "line-1"}},
        {"target": {"device_ids": []}},
        {"target": {"tag": "bad tag"}},
        {"gate_s": -1},
        {"device_timeout_s": 0},
        {"max_failures": -1},
        {"surprise": True},
    ],
)
def test_bad_rollouts_are_refused(client: TestClient, owner: Account, change: dict[str, Any]) -> None:
    _devices(client, owner.org_id, "m", 2)
    body = {"model_pk": _model(client, owner), "target": {"device_kind": "vibration"}, **change}
    response = _create(client, owner, **body)
    assert response.status_code == 422, response.text
    assert client.get("/api/v1/rollouts", headers=owner.headers).json() == []


def test_targets_that_cannot_be_used_are_refused(client: TestClient, owner: Account) -> None:
    devices = _devices(client, owner.org_id, "m", 3)
    cameras = _devices(client, owner.org_id, "cam", 1, kind="camera")
    model_pk = _model(client, owner)
    cases = [
        ({"model_pk": 9999, "target": {"device_kind": "vibration"}}, 404),
        ({"model_pk": model_pk, "target": {"device_ids": ["ghost"]}}, 404),
        ({"model_pk": model_pk, "target": {"device_ids": cameras}}, 409),
        ({"model_pk": model_pk, "target": {"device_kind": "camera"}}, 409),
        ({"model_pk": model_pk, "target": {"tag": "nobody-has-it"}}, 409),
    ]
    for body, status in cases:
        response = _create(client, owner, **body)
        assert response.status_code == status, (body, response.text)
    seed.add_device(_context(client).sessions, owner.org_id, "unclaimed")
    response = _create(client, owner, model_pk=model_pk, target={"device_ids": ["unclaimed"]})
    assert response.status_code == 404  # no credentials yet: it could never download

    first = _create(client, owner, model_pk=model_pk, target={"device_ids": devices[:2]})
    assert first.status_code == 201
    busy = _create(client, owner, model_pk=model_pk, target={"device_kind": "vibration"})
    assert busy.status_code == 409 and "is in rollout" in busy.json()["detail"]
    aborted = client.post(f"/api/v1/rollouts/{first.json()['id']}/abort", headers=owner.headers)
    assert aborted.status_code == 200
    assert _create(client, owner, model_pk=model_pk, target={"device_kind": "vibration"}).status_code == 201


def test_tags_set_by_patch_select_the_devices(client: TestClient, owner: Account) -> None:
    devices = _devices(client, owner.org_id, "m", 4)
    for device_id in devices[:2]:
        response = client.patch(
            f"/api/v1/devices/{device_id}", json={"tags": ["line-3", "pilot", "pilot"]}, headers=owner.headers
        )
        assert response.status_code == 200 and response.json()["tags"] == ["line-3", "pilot"]
    renamed = client.patch(f"/api/v1/devices/{devices[2]}", json={"name": "Press 3"}, headers=owner.headers)
    assert renamed.json()["name"] == "Press 3" and renamed.json()["tags"] == []
    bad = client.patch(f"/api/v1/devices/{devices[2]}", json={"tags": ["no spaces"]}, headers=owner.headers)
    assert bad.status_code == 422
    response = _create(
        client, owner, model_pk=_model(client, owner), target={"tag": "pilot"}, stages=[50, 100]
    )
    assert response.status_code == 201, response.text
    assert sorted(d["device_id"] for d in response.json()["device_states"]) == devices[:2]


def test_pause_resume_abort_and_their_conflicts(client: TestClient, owner: Account) -> None:
    _devices(client, owner.org_id, "m", 3)
    rollout_id = _create(
        client, owner, model_pk=_model(client, owner), target={"device_kind": "vibration"}
    ).json()["id"]
    base = f"/api/v1/rollouts/{rollout_id}"
    assert client.post(f"{base}/resume", headers=owner.headers).status_code == 409
    assert client.post(f"{base}/pause", headers=owner.headers).json()["state"] == "paused"
    assert client.post(f"{base}/pause", headers=owner.headers).status_code == 409
    assert client.post(f"{base}/resume", headers=owner.headers).json()["state"] == "running"
    aborted = client.post(f"{base}/abort", json={"rollback": True}, headers=owner.headers).json()
    assert aborted["state"] == "aborted" and aborted["rollback"] and aborted["finished_at"]
    assert client.post(f"{base}/abort", headers=owner.headers).status_code == 409
    assert client.post(f"{base}/resume", headers=owner.headers).status_code == 409
    audit = client.get("/api/v1/organization/audit", headers=owner.headers).json()
    actions = [a["action"] for a in audit if a["target_type"] == "rollout"]
    assert actions == ["rollout.abort", "rollout.resume", "rollout.pause", "rollout.create"]


def test_roles_and_other_organizations(client: TestClient, owner: Account) -> None:
    _devices(client, owner.org_id, "m", 3)
    model_pk = _model(client, owner)
    viewer = invite(client, owner, "viewer@plant.example", "viewer")
    assert _create(client, viewer, model_pk=model_pk, target={"device_kind": "vibration"}).status_code == 403
    rollout_id = _create(client, owner, model_pk=model_pk, target={"device_kind": "vibration"}).json()["id"]
    assert client.get(f"/api/v1/rollouts/{rollout_id}", headers=viewer.headers).status_code == 200
    assert client.post(f"/api/v1/rollouts/{rollout_id}/pause", headers=viewer.headers).status_code == 403

    other = sign_up(client, "owner@elsewhere.example", "Elsewhere")
    other_devices = _devices(client, other.org_id, "o", 2)
    assert client.get("/api/v1/rollouts", headers=other.headers).json() == []
    for method, path in (("GET", ""), ("POST", "/pause"), ("POST", "/resume"), ("POST", "/abort")):
        response = client.request(method, f"/api/v1/rollouts/{rollout_id}{path}", headers=other.headers)
        assert response.status_code == 404, (method, path)
    # org A's model for org B's devices, and org B's model for org A's devices: both unknown
    assert _create(client, other, model_pk=model_pk, target={"device_ids": other_devices}).status_code == 404
    other_model = _model(client, other)
    stolen = _create(client, other, model_pk=other_model, target={"device_ids": ["m-00"]})
    assert stolen.status_code == 404
    assert client.get(f"/api/v1/rollouts/{rollout_id}", headers=owner.headers).json()["state"] == "running"
