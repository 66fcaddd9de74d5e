"""Acknowledging an alarm from the signed one-time link in a notification: a GET changes nothing
(mail scanners prefetch links), the confirmation page's POST acknowledges; used twice, expired or
forged links are refused."""

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from edgefleet.contracts import utc_now
from edgefleet.server import create_app
from edgefleet.server.db import transaction
from edgefleet.server.db.models import Alarm, AuditEntry, NotifyTransition
from edgefleet.server.ingest import IngestStore
from edgefleet.server.notify import ack_links, message
from tests.server import seed
from tests.server.conftest import OTHER_SECRET, make_settings, sign_up


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(tmp_path, notify_worker=False, alarm_notify_cooldown_s=0)
    with TestClient(create_app(settings)) as client:
        yield client


def _alarm_link(client: TestClient, device_id: str) -> tuple[int, str]:
    """An alarm opened through the ingest, and the acknowledge link of its notification."""
    context = client.app.state.edgefleet  # type: ignore[attr-defined]
    owner = sign_up(client, f"owner-{device_id}@plant.example")
    seed.add_device(context.sessions, owner.org_id, device_id)
    seed.ingest(IngestStore(context.sessions, alarm_cooldown_s=0), seed.anomaly(device_id))
    settings = context.settings
    with transaction(context.sessions) as session:
        transition = session.scalar(select(NotifyTransition).where(NotifyTransition.change == "opened"))
        assert transition is not None
        links = message.LinkSettings("http://testserver", settings.secret_key, settings.notify_ack_link_ttl_s)
        note = message.build(session, transition, links)
    assert note.alarm is not None and note.links.acknowledge is not None
    return note.alarm.id, note.links.acknowledge


def _acked(client: TestClient, alarm_id: int) -> bool:
    with client.app.state.edgefleet.sessions() as session:  # type: ignore[attr-defined]
        alarm = session.get(Alarm, alarm_id)
        assert alarm is not None
        return alarm.acked_at is not None


def _token(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def test_link_confirms_on_get_and_acknowledges_once_on_post(app_client: TestClient) -> None:
    alarm_id, link = _alarm_link(app_client, "ack-dev-1")
    path = urlsplit(link).path + "?" + urlsplit(link).query
    for _ in range(3):  # a scanner, a preview, the person: nothing changes
        page = app_client.get(path)
        assert page.status_code == 200 and 'action="/notify/ack"' in page.text
        assert page.headers["cache-control"] == "no-store"
    assert not _acked(app_client, alarm_id)

    done = app_client.post("/notify/ack", data={"token": _token(link)})
    assert done.status_code == 200 and "Alarm acknowledged." in done.text
    assert _acked(app_client, alarm_id)
    with app_client.app.state.edgefleet.sessions() as session:  # type: ignore[attr-defined]
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "alarm.ack"))
        assert entry is not None and entry.detail == {"via": "notification link"}

    again = app_client.post("/notify/ack", data={"token": _token(link)})
    assert again.status_code == 410 and "used already" in again.text
    assert "used already" in app_client.get(path).text


def test_expired_and_forged_links_are_refused(app_client: TestClient) -> None:
    alarm_id, link = _alarm_link(app_client, "ack-dev-2")
    secret = app_client.app.state.edgefleet.settings.secret_key  # type: ignore[attr-defined]
    token = _token(link)
    later = utc_now() + timedelta(days=8)  # the default lifetime is 7 days
    assert ack_links.read_token(secret, token, later) == "expired"

    claims = jwt.decode(token, options={"verify_signature": False})
    expired = jwt.encode(
        {**claims, "exp": int((utc_now() - timedelta(minutes=1)).timestamp())}, ack_links._key(secret)
    )
    forged = jwt.encode(claims, ack_links._key(SecretStr(OTHER_SECRET)), algorithm="HS256")
    other_alarm = jwt.encode({**claims, "alarm": alarm_id + 1}, "guessed", algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")  # type: ignore[arg-type]
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    cases = {expired: (410, "expired"), forged: (403, "not valid"), other_alarm: (403, "not valid")}
    cases |= {unsigned: (403, "not valid"), tampered: (403, "not valid"), "x" * 40: (403, "not valid")}
    for bad, (status, words) in cases.items():
        answer = app_client.post("/notify/ack", data={"token": bad})
        assert (answer.status_code, words in answer.text) == (status, True), answer.text
        assert app_client.get("/notify/ack", params={"token": bad}).status_code == 410
    assert not _acked(app_client, alarm_id)
    assert app_client.post("/notify/ack", data={"token": token}).status_code == 200  # the real one works
