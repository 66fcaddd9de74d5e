"""The notifications API: channel secrets are write-only (never in an answer, not in the database in
clear), bad settings are a 422, an organization sees only its own; feed and push subscriptions."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from edgefleet.server import create_app
from edgefleet.server.db.models import NotifyChannel
from edgefleet.server.ingest import IngestStore
from edgefleet.server.notify.config import AppriseConfig
from edgefleet.server.notify.worker import NotifyWorker
from tests.server import seed
from tests.server.conftest import invite, make_settings, sign_up

SMTP_PASSWORD = "smtp-pw-Zq81xkY7"
APPRISE_URL = "ntfy://ntfy.example/alarms-tk_SECRET93"
API = "/api/v1/notifications"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(tmp_path, notify_worker=False, alarm_notify_cooldown_s=0)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _email(password: str | None = SMTP_PASSWORD) -> dict[str, Any]:
    config = {"host": "smtp.plant.example", "sender": "ef@plant.example", "to": ["ops@plant.example"]}
    return {**config, "username": "ef", "password": password} if password else config


def test_channel_secrets_are_write_only(client: TestClient) -> None:
    owner = sign_up(client, "owner@secrets.example")
    bodies = [
        {"name": "mail", "kind": "email", "config": _email()},
        {"name": "chat", "kind": "apprise", "config": {"urls": [APPRISE_URL]}},
    ]
    answers = [client.post(f"{API}/channels", json=body, headers=owner.headers) for body in bodies]
    assert [a.status_code for a in answers] == [201, 201]
    mail_id = answers[0].json()["id"]
    assert answers[0].json()["secrets_set"] == ["password"] and "password" not in answers[0].json()["config"]
    patched = client.patch(
        f"{API}/channels/{mail_id}", json={"config": {"port": 465, "security": "tls"}}, headers=owner.headers
    )
    assert patched.status_code == 200 and patched.json()["config"]["port"] == 465
    reads = [patched, client.get(f"{API}/channels", headers=owner.headers)]
    reads.append(client.get(f"{API}/channels/{mail_id}", headers=owner.headers))
    for answer in answers + reads:
        assert SMTP_PASSWORD not in answer.text and "tk_SECRET93" not in answer.text
    context = client.app.state.edgefleet  # type: ignore[attr-defined]
    with context.sessions() as session:
        rows = list(session.scalars(select(NotifyChannel).order_by(NotifyChannel.id)))
        for row in rows:  # sealed at rest, under the secret key
            assert SMTP_PASSWORD.encode() not in (row.secrets_sealed or b"")
            assert "tk_SECRET93" not in str(row.config) and b"tk_SECRET93" not in (row.secrets_sealed or b"")
        worker = NotifyWorker(context.sessions, context.settings)
        mail = worker.load_config(rows[0])
        chat = worker.load_config(rows[1])
    assert mail.password is not None and mail.password.get_secret_value() == SMTP_PASSWORD  # type: ignore[union-attr]
    assert mail.port == 465  # type: ignore[union-attr]  # the patch kept the password
    assert isinstance(chat, AppriseConfig) and chat.urls[0].get_secret_value() == APPRISE_URL
    assert SMTP_PASSWORD not in repr(mail) and SMTP_PASSWORD not in str(mail.model_dump())


BAD_SETTINGS: list[tuple[str, dict[str, Any], str]] = [
    ("email", {"host": "smtp.example", "sender": "not an address", "to": ["a@b.example"]}, "sender"),
    ("email", {"host": "smtp.example", "sender": "a@b.example", "to": []}, "to"),
    ("webhook", {"url": "ftp://hooks.example/x"}, "http"),
    ("apprise", {"urls": ["notaservice://x"]}, "Apprise URL"),
    ("mqtt", {"url": "http://broker.example"}, "mqtt://"),
    ("mqtt", {"url": "mqtt://broker.example", "topic_prefix": "a//b"}, "topic"),
    ("email", {"host": "smtp.example", "sender": "a@b.example", "to": ["a@b.example"], "extra": 1}, "extra"),
    ("sms", {}, "kind"),
]


def test_bad_channel_settings_are_422(client: TestClient) -> None:
    owner = sign_up(client, "owner@bad.example")
    for kind, config, words in BAD_SETTINGS:
        body = {"name": "x", "kind": kind, "config": config}
        answer = client.post(f"{API}/channels", json=body, headers=owner.headers)
        assert answer.status_code == 422 and words in answer.text, answer.text
    assert client.get(f"{API}/channels", headers=owner.headers).json() == []


def test_rules_organizations_and_roles(client: TestClient) -> None:
    owner = sign_up(client, "owner@rules.example", "Plant A")
    viewer = invite(client, owner, "viewer@rules.example", "viewer")
    other = sign_up(client, "owner@other.example", "Plant B")
    channel = client.post(
        f"{API}/channels", json={"name": "hook", "kind": "webhook", "config": {"url": "https://h.example/x"}},
        headers=owner.headers,
    ).json()  # fmt: skip
    assert channel["generated_secret"] and channel["generated_secret"] not in str(
        client.get(f"{API}/channels", headers=owner.headers).json()
    )
    rule = {"name": "all", "channel_ids": [channel["id"]], "kinds": ["anomaly"], "min_severity": "warning"}
    assert client.post(f"{API}/rules", json=rule, headers=viewer.headers).status_code == 403
    assert client.post(f"{API}/rules", json=rule, headers=other.headers).status_code == 404  # not its channel
    created = client.post(f"{API}/rules", json=rule, headers=owner.headers)
    assert created.status_code == 201
    bad_rules = [
        {**rule, "quiet_start": "22:00"},
        {**rule, "quiet_start": "22:00", "quiet_end": "06:00", "quiet_timezone": "Mars/Olympus"},
        {**rule, "escalate_after_s": 600},
        {**rule, "quiet_start": "25:00", "quiet_end": "06:00"},
    ]
    for bad in bad_rules:
        assert client.post(f"{API}/rules", json=bad, headers=owner.headers).status_code == 422, bad
    rule_id = created.json()["id"]
    assert client.get(f"{API}/rules/{rule_id}", headers=other.headers).status_code == 404
    assert client.get(f"{API}/channels/{channel['id']}", headers=other.headers).status_code == 404
    assert client.get(f"{API}/rules", headers=other.headers).json() == []
    patched = client.patch(f"{API}/rules/{rule_id}", json={"min_severity": "critical"}, headers=owner.headers)
    assert patched.json()["min_severity"] == "critical" and patched.json()["kinds"] == ["anomaly"]
    assert client.delete(f"{API}/channels/{channel['id']}", headers=owner.headers).status_code == 204
    assert client.get(f"{API}/rules/{rule_id}", headers=owner.headers).json()["channel_ids"] == []


def test_test_send_feed_and_push_subscriptions(client: TestClient) -> None:
    owner = sign_up(client, "owner@feed.example")
    viewer = invite(client, owner, "viewer@feed.example", "viewer")
    channel = client.post(
        f"{API}/channels",
        json={"name": "mail", "kind": "email", "config": _email(None)},
        headers=owner.headers,
    ).json()
    assert client.post(f"{API}/channels/{channel['id']}/test", headers=viewer.headers).status_code == 403
    sent = client.post(f"{API}/channels/{channel['id']}/test", headers=owner.headers)
    assert sent.status_code == 202
    [delivery] = client.get(f"{API}/deliveries", headers=viewer.headers).json()
    assert delivery["id"] == sent.json()["delivery_ids"][0] and delivery["change"] == "test"
    assert delivery["notification_id"] == sent.json()["notification_id"] and delivery["status"] == "pending"

    context = client.app.state.edgefleet  # type: ignore[attr-defined]
    seed.add_device(context.sessions, owner.org_id, "feed-dev")
    seed.ingest(IngestStore(context.sessions, alarm_cooldown_s=0), seed.anomaly("feed-dev"))
    feed = client.get(f"{API}/feed", headers=viewer.headers).json()
    assert feed["unseen"] == 1 and feed["items"][0]["device_id"] == "feed-dev"  # tests are not in the bell
    seen = {"last_id": feed["items"][0]["id"]}
    assert client.post(f"{API}/feed/seen", json=seen, headers=viewer.headers).status_code == 204
    assert client.get(f"{API}/feed", headers=viewer.headers).json()["unseen"] == 0
    assert client.get(f"{API}/feed", headers=owner.headers).json()["unseen"] == 1  # per user

    key = client.get(f"{API}/push/key", headers=viewer.headers).json()["public_key"]
    assert key == client.get(f"{API}/push/key", headers=owner.headers).json()["public_key"] and len(key) == 87
    subscription = {
        "endpoint": "https://93.184.216.34/send/abc",  # a literal public address: no DNS needed
        "keys": {"p256dh": "B" * 87, "auth": "a" * 22},
    }
    assert (
        client.post(f"{API}/push/subscriptions", json=subscription, headers=viewer.headers).status_code == 201
    )
    plain = {**subscription, "endpoint": "http://push.example/x"}
    assert client.post(f"{API}/push/subscriptions", json=plain, headers=viewer.headers).status_code == 422
    assert len(client.get(f"{API}/push/subscriptions", headers=viewer.headers).json()) == 1
    assert client.get(f"{API}/push/subscriptions", headers=owner.headers).json() == []
    gone = client.delete(
        f"{API}/push/subscriptions", params={"endpoint": subscription["endpoint"]}, headers=viewer.headers
    )
    assert (
        gone.status_code == 204
        and client.get(f"{API}/push/subscriptions", headers=viewer.headers).json() == []
    )
