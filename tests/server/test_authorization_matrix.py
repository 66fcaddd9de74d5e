"""Every API route x {anonymous, viewer, admin, owner, other organization}.

A viewer never changes anything; an admin manages devices and alarms; an owner also manages users
and the organization; nobody reads or changes another organization's data (404, or lists without it).
"""

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from edgefleet.contracts import utc_now
from edgefleet.server import create_app
from edgefleet.server.context import ServerContext
from edgefleet.server.db import transaction
from edgefleet.server.db.models import Device
from edgefleet.server.ingest import IngestStore
from edgefleet.server.services import accounts
from tests.server import drift_helpers, registry_kit, seed
from tests.server.conftest import PASSWORD, Account, invite, make_settings, sign_up

PRINCIPALS = ("anonymous", "viewer", "admin", "owner", "other")
MARKER = "zq-org-a"  # appears in org A's names, emails and device ids; must never reach org B
_n = itertools.count()


@dataclass
class World:
    client: TestClient
    context: ServerContext
    accounts: dict[str, Account]
    ids: dict[str, Any] = field(default_factory=dict)

    @property
    def org_a(self) -> int:
        return self.accounts["owner"].org_id

    def new_device(self) -> str:
        device_id = f"{MARKER}-dev-{next(_n)}"
        seed.add_device(self.context.sessions, self.org_a, device_id)
        return device_id

    def new_alarm(self) -> int:
        device_id = self.new_device()
        store = IngestStore(self.context.sessions)
        seed.ingest(store, seed.anomaly(device_id))
        response = self.client.get(
            "/api/v1/alarms", params={"device_id": device_id}, headers=self.accounts["owner"].headers
        )
        alarm_id: int = response.json()[0]["id"]
        return alarm_id

    def new_user(self) -> int:
        with self.context.sessions() as session, session.begin():
            user = accounts.create_user(
                session, self.org_a, f"{MARKER}-u{next(_n)}@a.example", PASSWORD, "viewer"
            )
            return user.id

    def new_model(self) -> int:
        files = registry_kit.files(registry_kit.card(f"{MARKER}-model", f"1.0.{next(_n)}"))
        response = self.client.post("/api/v1/models", files=files, headers=self.accounts["owner"].headers)
        model_pk: int = response.json()["id"]
        return model_pk

    def new_claimed_device(self) -> str:
        device_id = self.new_device()
        with transaction(self.context.sessions) as session:  # rollouts target claimed devices only
            device = session.get(Device, device_id)
            assert device is not None
            device.claimed_at = utc_now()
        return device_id

    def new_rollout(self, paused: bool = False) -> int:
        body = {"model_pk": self.ids["model"], "target": {"device_ids": [self.new_claimed_device()]}}
        headers = self.accounts["owner"].headers
        rollout_id: int = self.client.post("/api/v1/rollouts", json=body, headers=headers).json()["id"]
        if paused:
            self.client.post(f"/api/v1/rollouts/{rollout_id}/pause", headers=headers)
        return rollout_id

    def new_channel(self) -> int:
        body = {"name": f"{MARKER}-hook", "kind": "webhook", "config": {"url": f"https://{MARKER}.example/h"}}
        response = self.client.post(
            "/api/v1/notifications/channels", json=body, headers=self.accounts["owner"].headers
        )
        channel_id: int = response.json()["id"]
        return channel_id

    def new_rule(self) -> int:
        body = {"name": f"{MARKER}-rule", "channel_ids": [self.new_channel()]}
        response = self.client.post(
            "/api/v1/notifications/rules", json=body, headers=self.accounts["owner"].headers
        )
        rule_id: int = response.json()["id"]
        return rule_id

    def owner_key(self) -> int:
        response = self.client.post(
            "/api/v1/auth/api-keys", json={"name": "k"}, headers=self.accounts["owner"].headers
        )
        key_id: int = response.json()["id"]
        return key_id


Setup = Callable[[World], dict[str, Any]]


@dataclass(frozen=True)
class Rule:
    role: str  # least role allowed: viewer | admin | owner | public | self | device (no user may)
    scope: str  # "resource": other org gets 404; "collection": other org gets its own (no leak)
    body: Callable[[], Any] | None = None
    setup: Setup = lambda _w: {}
    params: dict[str, str] = field(default_factory=dict)
    files: Callable[[], Any] | None = None  # multipart uploads
    query: Setup = lambda _w: {}  # query parameters that need objects made by the world
    json: Setup | None = None  # a body that needs objects made by the world


def _device(w: World) -> dict[str, Any]:
    return {"device_id": w.ids["device"]}


def _fresh_device(w: World) -> dict[str, Any]:
    return {"device_id": w.new_device()}


def _drifting_device(w: World) -> dict[str, Any]:
    """The world's device with versioned telemetry, so drift routes have org A data to (not) leak."""
    seed.ingest(IngestStore(w.context.sessions), drift_helpers.report(w.ids["device"], 20_000, drift=2.0))
    return {"device_id": w.ids["device"]}


def _model(w: World) -> dict[str, Any]:
    return {"model_pk": w.ids["model"]}


def _upload() -> Any:
    return registry_kit.files(registry_kit.card("matrix-upload", f"2.0.{next(_n)}"))


RULES: dict[tuple[str, str], Rule] = {
    ("POST", "/api/v1/auth/signup"): Rule("public", "collection"),
    ("POST", "/api/v1/auth/login"): Rule("public", "collection"),
    ("POST", "/api/v1/auth/logout"): Rule("public", "collection"),
    ("POST", "/api/v1/auth/invites/accept"): Rule("public", "collection"),
    ("POST", "/api/v1/devices/claim"): Rule("public", "collection"),
    ("GET", "/api/v1/auth/me"): Rule("viewer", "collection"),
    ("GET", "/api/v1/auth/api-keys"): Rule("viewer", "collection"),
    ("POST", "/api/v1/auth/password"): Rule(
        "viewer", "collection", body=lambda: {"current_password": PASSWORD, "new_password": PASSWORD}
    ),
    ("POST", "/api/v1/auth/api-keys"): Rule("viewer", "collection", body=lambda: {"name": "mine"}),
    ("DELETE", "/api/v1/auth/api-keys/{key_id}"): Rule(
        "self", "resource", setup=lambda w: {"key_id": w.owner_key()}
    ),
    ("GET", "/api/v1/organization"): Rule("viewer", "collection"),
    ("PATCH", "/api/v1/organization"): Rule("owner", "collection", body=lambda: {"event_retention_days": 90}),
    ("GET", "/api/v1/organization/audit"): Rule("admin", "collection"),
    ("GET", "/api/v1/organization/signing-key"): Rule("viewer", "collection"),
    ("GET", "/api/v1/users"): Rule("viewer", "collection"),
    ("PATCH", "/api/v1/users/{user_id}"): Rule(
        "owner", "resource", body=lambda: {"is_active": True}, setup=lambda w: {"user_id": w.new_user()}
    ),
    ("DELETE", "/api/v1/users/{user_id}"): Rule(
        "owner", "resource", setup=lambda w: {"user_id": w.new_user()}
    ),
    ("GET", "/api/v1/users/invites"): Rule("owner", "collection"),
    ("POST", "/api/v1/users/invites"): Rule(
        "owner", "collection", body=lambda: {"email": f"new{next(_n)}@b.example", "role": "viewer"}
    ),
    ("GET", "/api/v1/devices"): Rule("viewer", "collection"),
    ("POST", "/api/v1/devices"): Rule("admin", "collection", body=lambda: {"id": f"new-{next(_n)}"}),
    ("GET", "/api/v1/devices/{device_id}"): Rule("viewer", "resource", setup=_device),
    ("PATCH", "/api/v1/devices/{device_id}"): Rule(
        "admin", "resource", body=lambda: {"tags": ["line-1"]}, setup=_fresh_device
    ),
    ("POST", "/api/v1/devices/{device_id}/revoke"): Rule("admin", "resource", setup=_fresh_device),
    ("DELETE", "/api/v1/devices/{device_id}"): Rule("admin", "resource", setup=_fresh_device),
    ("POST", "/api/v1/devices/{device_id}/commands"): Rule(
        "admin", "resource", body=lambda: {"command": "publish_status"}, setup=_device
    ),
    ("GET", "/api/v1/devices/{device_id}/telemetry"): Rule("viewer", "resource", setup=_device),
    ("GET", "/api/v1/events"): Rule("viewer", "collection"),
    ("GET", "/api/v1/events/{event_id}"): Rule(
        "viewer", "resource", setup=lambda w: {"event_id": w.ids["event"]}
    ),
    ("GET", "/api/v1/telemetry/rollups"): Rule("viewer", "collection"),
    ("GET", "/api/v1/samples"): Rule("viewer", "collection"),
    ("GET", "/api/v1/stats/events"): Rule("viewer", "collection", params={"group_by": "device"}),
    ("GET", "/api/v1/stats/overview"): Rule("viewer", "collection"),
    ("GET", "/api/v1/alarms"): Rule("viewer", "collection"),
    ("POST", "/api/v1/models"): Rule("admin", "collection", files=_upload),
    ("GET", "/api/v1/models"): Rule("viewer", "collection"),
    ("GET", "/api/v1/models/compare"): Rule(
        "viewer", "resource", query=lambda w: {"a": w.ids["model"], "b": w.new_model()}
    ),
    ("GET", "/api/v1/models/{model_pk}"): Rule("viewer", "resource", setup=_model),
    ("POST", "/api/v1/models/{model_pk}/default"): Rule("admin", "resource", setup=_model),
    ("GET", "/api/v1/models/{model_pk}/manifest"): Rule("viewer", "resource", setup=_model),
    ("GET", "/api/v1/ota/packages/{model_pk}"): Rule("device", "resource", setup=_model),
    ("POST", "/api/v1/alarms/{alarm_id}/ack"): Rule(
        "admin", "resource", setup=lambda w: {"alarm_id": w.new_alarm()}
    ),
    ("POST", "/api/v1/alarms/{alarm_id}/clear"): Rule(
        "admin", "resource", setup=lambda w: {"alarm_id": w.new_alarm()}
    ),
    ("GET", "/api/v1/drift"): Rule("viewer", "collection", setup=_drifting_device),
    ("GET", "/api/v1/drift/devices/{device_id}"): Rule("viewer", "resource", setup=_drifting_device),
    ("GET", "/api/v1/rollouts"): Rule("viewer", "collection"),
    ("POST", "/api/v1/rollouts"): Rule(  # "resource": org A's model and devices are unknown to org B
        "admin",
        "resource",
        json=lambda w: {"model_pk": w.ids["model"], "target": {"device_ids": [w.new_claimed_device()]}},
    ),
    ("GET", "/api/v1/rollouts/{rollout_id}"): Rule(
        "viewer", "resource", setup=lambda w: {"rollout_id": w.new_rollout()}
    ),
    ("POST", "/api/v1/rollouts/{rollout_id}/pause"): Rule(
        "admin", "resource", setup=lambda w: {"rollout_id": w.new_rollout()}
    ),
    ("POST", "/api/v1/rollouts/{rollout_id}/resume"): Rule(
        "admin", "resource", setup=lambda w: {"rollout_id": w.new_rollout(paused=True)}
    ),
    ("POST", "/api/v1/rollouts/{rollout_id}/abort"): Rule(
        "admin", "resource", setup=lambda w: {"rollout_id": w.new_rollout()}
    ),
    # notifications (issue 21)
    ("GET", "/api/v1/notifications/channels"): Rule("viewer", "collection"),
    ("POST", "/api/v1/notifications/channels"): Rule(
        "admin",
        "collection",
        body=lambda: {"name": "m", "kind": "webhook", "config": {"url": "https://h.example/"}},
    ),
    ("GET", "/api/v1/notifications/channels/{channel_id}"): Rule(
        "viewer", "resource", setup=lambda w: {"channel_id": w.new_channel()}
    ),
    ("PATCH", "/api/v1/notifications/channels/{channel_id}"): Rule(
        "admin", "resource", body=lambda: {"enabled": True}, setup=lambda w: {"channel_id": w.new_channel()}
    ),
    ("DELETE", "/api/v1/notifications/channels/{channel_id}"): Rule(
        "admin", "resource", setup=lambda w: {"channel_id": w.new_channel()}
    ),
    ("POST", "/api/v1/notifications/channels/{channel_id}/test"): Rule(
        "admin", "resource", setup=lambda w: {"channel_id": w.new_channel()}
    ),
    ("GET", "/api/v1/notifications/rules"): Rule("viewer", "collection"),
    ("POST", "/api/v1/notifications/rules"): Rule(  # "resource": org A's channel is unknown to org B
        "admin", "resource", json=lambda w: {"name": "r", "channel_ids": [w.new_channel()]}
    ),
    ("GET", "/api/v1/notifications/rules/{rule_id}"): Rule(
        "viewer", "resource", setup=lambda w: {"rule_id": w.new_rule()}
    ),
    ("PATCH", "/api/v1/notifications/rules/{rule_id}"): Rule(
        "admin", "resource", body=lambda: {"enabled": True}, setup=lambda w: {"rule_id": w.new_rule()}
    ),
    ("DELETE", "/api/v1/notifications/rules/{rule_id}"): Rule(
        "admin", "resource", setup=lambda w: {"rule_id": w.new_rule()}
    ),
    ("GET", "/api/v1/notifications/deliveries"): Rule("viewer", "collection"),
    ("GET", "/api/v1/notifications/feed"): Rule("viewer", "collection"),
    ("POST", "/api/v1/notifications/feed/seen"): Rule("viewer", "collection", body=lambda: {"last_id": 0}),
    ("GET", "/api/v1/notifications/push/key"): Rule("viewer", "collection"),
    ("GET", "/api/v1/notifications/push/subscriptions"): Rule("viewer", "collection"),
    ("POST", "/api/v1/notifications/push/subscriptions"): Rule(
        "viewer",
        "collection",
        body=lambda: {
            "endpoint": f"https://93.184.216.34/send/{next(_n)}",  # a public address: no DNS needed
            "keys": {"p256dh": "B" * 87, "auth": "a" * 22},
        },
    ),
    ("DELETE", "/api/v1/notifications/push/subscriptions"): Rule(
        "viewer", "collection", params={"endpoint": "https://push.example/none"}
    ),
}
RANK = {"viewer": 0, "admin": 1, "owner": 2}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = make_settings(tmp_path_factory.mktemp("matrix"))
    app = create_app(settings)
    with TestClient(app) as client:
        owner = sign_up(client, f"owner@{MARKER}.a.example", f"Org {MARKER}")
        people = {
            "owner": owner,
            "admin": invite(client, owner, f"admin@{MARKER}.a.example", "admin"),
            "viewer": invite(client, owner, f"viewer@{MARKER}.a.example", "viewer"),
            "other": sign_up(client, "owner@b.example", "Org B"),
        }
        w = World(client, app.state.edgefleet, people)
        w.ids["device"] = w.new_device()
        w.ids["model"] = w.new_model()
        store = IngestStore(w.context.sessions)
        seed.ingest(store, seed.anomaly(w.ids["device"]), seed.telemetry(w.ids["device"], 10_000))
        events = client.get("/api/v1/events", headers=owner.headers).json()["items"]
        w.ids["event"] = events[0]["id"]
        yield w


def test_every_route_has_a_rule(world: World) -> None:
    paths = world.client.app.openapi()["paths"]  # type: ignore[attr-defined]
    routes = {(method.upper(), path) for path, item in paths.items() for method in item}
    assert routes == set(RULES), f"missing rules: {routes - set(RULES)}; stale rules: {set(RULES) - routes}"


def _expected(rule: Rule, principal: str) -> str:
    if rule.role == "public":
        return "allowed"
    if rule.role == "device":  # device credentials only (tests/server/test_ota_download.py)
        return "401"
    if principal == "anonymous":
        return "401"
    if principal == "other":
        return "404" if rule.scope == "resource" else "own"
    if rule.role == "self":
        return "allowed" if principal == "owner" else "404"
    return "allowed" if RANK[principal] >= RANK[rule.role] else "403"


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize(
    ("method", "path"), sorted(k for k, r in RULES.items() if r.role != "public"), ids=str
)
def test_authorization(world: World, method: str, path: str, principal: str) -> None:
    rule = RULES[(method, path)]
    url = path.format(**rule.setup(world))
    headers = {} if principal == "anonymous" else world.accounts[principal].headers
    body = rule.body() if rule.body else rule.json(world) if rule.json else None
    world.client.cookies.clear()
    files = rule.files() if rule.files else None
    params = {**rule.params, **rule.query(world)}
    response = world.client.request(method, url, json=body, files=files, headers=headers, params=params)
    expected = _expected(rule, principal)
    detail = f"{method} {url} as {principal}: {response.status_code} {response.text[:200]}"
    if expected in {"allowed", "own"}:
        # commands need a broker; this app has none (503 means authorization passed)
        assert response.status_code < 300 or response.status_code == 503, detail
        assert expected == "allowed" or MARKER not in response.text, f"leak: {detail}"
    else:
        assert response.status_code == int(expected), detail


def test_other_organization_cannot_change_org_a(world: World) -> None:
    other = world.accounts["other"]
    world.client.patch("/api/v1/organization", json={"name": "hijacked"}, headers=other.headers)
    org = world.client.get("/api/v1/organization", headers=world.accounts["viewer"].headers).json()
    assert org["name"] == f"Org {MARKER}"
    taken = world.client.post("/api/v1/devices", json={"id": world.ids["device"]}, headers=other.headers)
    assert taken.status_code == 409  # device ids are global (they are MQTT topics); no takeover


def test_invite_cannot_grant_more_than_the_inviter_has(world: World, tmp_path: Path) -> None:
    del tmp_path
    admin = world.accounts["admin"]
    response = world.client.post(
        "/api/v1/users/invites", json={"email": "boss@b.example", "role": "owner"}, headers=admin.headers
    )
    assert response.status_code == 403


def test_operation_ids_are_clean_and_unique(world: World) -> None:
    paths = world.client.app.openapi()["paths"]  # type: ignore[attr-defined]
    ids = [op["operationId"] for item in paths.values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert all(i.isidentifier() and i.islower() and "api_v1" not in i for i in ids), ids
    assert {"list_devices", "add_device", "login", "list_events", "acknowledge_alarm"} <= set(ids)


def test_public_routes_need_no_session(world: World) -> None:
    """The public routes (sign-up, login, logout, invite accept, device claim) answer anonymous callers
    on their merits: wrong credentials are 401, never a demand to sign in first."""
    client = world.client
    client.cookies.clear()
    assert client.post("/api/v1/auth/logout").status_code == 204
    bad_login = client.post("/api/v1/auth/login", json={"email": "nobody@b.example", "password": "x" * 12})
    assert bad_login.status_code == 401
    bad_invite = client.post("/api/v1/auth/invites/accept", json={"token": "nope", "password": PASSWORD})
    assert bad_invite.status_code == 401
    bad_claim = client.post(
        "/api/v1/devices/claim", json={"device_id": world.ids["device"], "claim_token": "x"}
    )
    assert bad_claim.status_code == 401
