"""What the server tells whom (issue 18, finding 8).

Before: `/metrics` (every tenant's totals) answered any organization's admins and owners; sign-up was
open by default, so anyone could become an owner; an owner could learn whether an email had an
account anywhere (an invite answered 409), and timing on the embedded broker told device ids apart;
`password12` was a good enough password; a 10 MB MQTT publish was read, buffered and acknowledged.
"""

import socket
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.contracts.base import MAX_PAYLOAD_BYTES
from edgefleet.server import ServerSettings, create_app, security
from edgefleet.server.broker import DeviceAuthority
from edgefleet.server.ingest import IngestStore
from edgefleet.server.mosquitto import BROKER_SETTINGS
from tests.server import seed
from tests.server.conftest import INGEST_PASSWORD, PASSWORD, SECRET, invite, make_settings, sign_up
from tests.support.services import MosquittoBroker, free_port

SCRAPE = "J7qv-2mXo9LrT4wYb8NcZs1KdF6hGu3EaP0iVtRnQyWx"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- /metrics ---------------------------------------------------------------------------------------
def test_metrics_are_for_the_operators_not_for_every_tenant(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, metrics_token=SCRAPE, operator_organization=1)
    with TestClient(create_app(settings)) as client:
        operator = sign_up(client, "ops@example.com", "Operator")
        tenant = sign_up(client, "ten@example.com", "Tenant")
        tenant_admin = invite(client, tenant, "adm@example.com", "admin")
        assert operator.org_id == 1 and tenant.org_id != 1
        for headers in (tenant.headers, tenant_admin.headers):
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 403 and "edgefleet_" not in refused.text
        assert client.get("/metrics", headers=operator.headers).status_code == 200
        assert client.get("/metrics", headers=_bearer(SCRAPE)).status_code == 200


def test_without_an_operator_organization_only_the_scrape_token_reads_metrics(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, metrics_token=SCRAPE, operator_organization=None)
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "own@example.com")
        assert client.get("/metrics", headers=owner.headers).status_code == 403
        assert client.get("/metrics", headers=_bearer(SCRAPE)).status_code == 200


# --- sign-up ----------------------------------------------------------------------------------------
def _plain_settings(tmp_path: Path, **values: object) -> ServerSettings:
    """Settings as an operator writes them: no test defaults (sign-up, operator organization)."""
    return ServerSettings.model_validate(
        {
            "db_url": f"sqlite:///{tmp_path / 'plain.db'}",
            "broker": "none",
            "secret_key": SECRET,
            "ingest_password": INGEST_PASSWORD,
            **values,
        }
    )


@pytest.mark.parametrize(
    ("values", "allowed"), [({}, False), ({"demo": True}, True), ({"allow_signup": True}, True)]
)
def test_sign_up_is_off_by_default_outside_demo_mode(
    tmp_path: Path, values: dict[str, object], allowed: bool
) -> None:
    settings = _plain_settings(tmp_path, **values)
    assert settings.allow_signup is allowed
    with TestClient(create_app(settings)) as client:
        body = {"email": "eve@example.com", "password": PASSWORD, "organization": "Eve"}
        response = client.post("/api/v1/auth/signup", json=body)
        assert response.status_code == (201 if allowed else 403), response.text


# --- existence across tenants -------------------------------------------------------------------------
def test_an_invite_does_not_say_whether_an_email_has_an_account(client: TestClient) -> None:
    prober = sign_up(client, "probe@example.com", "Prober")
    sign_up(client, "victim@example.com", "Victim")
    answers = [
        client.post("/api/v1/users/invites", json={"email": email}, headers=prober.headers)
        for email in ("victim@example.com", "nobody@example.com")
    ]
    assert [a.status_code for a in answers] == [201, 201]
    assert sorted(answers[0].json()) == sorted(answers[1].json())  # the same fields
    # the invitee, whose email it is, learns it on accepting
    accepted = client.post(
        "/api/v1/auth/invites/accept", json={"token": answers[0].json()["token"], "password": PASSWORD}
    )
    assert accepted.status_code == 409


def test_the_embedded_broker_does_the_same_work_for_unknown_device_ids(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = sign_up(client, "own@example.com")
    created = client.post("/api/v1/devices", json={"id": "known-1"}, headers=owner.headers).json()
    client.post("/api/v1/devices/claim", json={"device_id": "known-1", "claim_token": created["claim_token"]})
    sessions: sessionmaker[Session] = client.app.state.edgefleet.sessions  # type: ignore[attr-defined]
    authority = DeviceAuthority(sessions, "edgefleet-ingest", INGEST_PASSWORD)
    checked: list[str] = []
    verify = security.verify_device_secret

    def counting(stored: str | None, secret: str) -> bool:
        checked.append(secret)
        return verify(stored, secret)

    monkeypatch.setattr(security, "verify_device_secret", counting)
    for device_id in ("known-1", "unknown-1"):
        assert not authority.authenticate(device_id, "a wrong secret", device_id)
    assert checked == ["a wrong secret", "a wrong secret"]  # a PBKDF2 check for both


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tmp_path))) as test_client:
        yield test_client


# --- passwords ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "password", ["password12", "qwertyuiop", "1234567890ab", "welcome2024", "plantplant1"]
)
def test_common_passwords_are_refused_everywhere(client: TestClient, password: str) -> None:
    body = {"email": "ann@example.com", "password": password, "organization": "Mill"}
    refused = client.post("/api/v1/auth/signup", json=body)
    assert refused.status_code == 422 and "too easy to guess" in refused.text, refused.text
    owner = sign_up(client, "own@example.com")
    token = client.post("/api/v1/users/invites", json={"email": "new@example.com"}, headers=owner.headers)
    accept = {"token": token.json()["token"], "password": password}
    assert client.post("/api/v1/auth/invites/accept", json=accept).status_code == 422
    change = {"current_password": PASSWORD, "new_password": password}
    assert client.post("/api/v1/auth/password", json=change, headers=owner.headers).status_code == 422
    assert (
        client.post("/api/v1/auth/login", json={"email": owner.email, "password": PASSWORD}).status_code
        == 200
    )


def test_a_password_made_of_the_email_or_organization_is_refused(client: TestClient) -> None:
    for password, organization in (("ann@example.com", "Mill"), ("Riverside Mill 1", "Riverside Mill")):
        body = {"email": "ann@example.com", "password": password, "organization": organization}
        assert client.post("/api/v1/auth/signup", json=body).status_code == 422, password


def test_good_passwords_pass() -> None:
    for password in (PASSWORD, "tangerine-orbit-cello-41", "Vk8#pq2!Lm9zRw"):
        security.check_password(password, context=("ann@example.com", "Mill"))


def test_the_cli_refuses_a_common_password(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edgefleet.cli.main import app as cli

    db = f"sqlite:///{tmp_path / 'cli.db'}"
    args = [
        "server",
        "user",
        "create",
        "--email",
        "a@example.com",
        "--organization",
        "Mill",
        "--role",
        "owner",
    ]
    weak = CliRunner().invoke(cli, [*args, "--password", "password12", "--db", db])
    assert weak.exit_code != 0 and "too easy to guess" in weak.output, weak.output
    good = CliRunner().invoke(cli, [*args, "--password", PASSWORD, "--db", db])
    assert good.exit_code == 0, good.output


# --- device time ---------------------------------------------------------------------------------------
def test_far_future_device_times_are_flagged_not_trusted(tmp_path: Path, client: TestClient) -> None:
    owner = sign_up(client, "own@example.com")
    assert client.post("/api/v1/devices", json={"id": "clock-1"}, headers=owner.headers).status_code == 201
    sessions: sessionmaker[Session] = client.app.state.edgefleet.sessions  # type: ignore[attr-defined]
    store = IngestStore(sessions, 600.0)
    far = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    seed.ingest(store, seed.anomaly("clock-1", seq=1, ts=far), seed.telemetry("clock-1", seq=2, ts=far))
    events = client.get("/api/v1/events", params={"device_id": "clock-1"}, headers=owner.headers).json()[
        "items"
    ]
    assert [(e["ts"][:4], e["time_flag"]) for e in events] == [("9999", "future")]
    assert datetime.fromisoformat(events[0]["received_at"]) <= datetime.now(UTC)  # the server's time rules
    telemetry = client.get("/api/v1/devices/clock-1/telemetry", headers=owner.headers).json()
    assert [t["time_flag"] for t in telemetry] == ["future"]


# --- MQTT packet size ----------------------------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _text(value: str) -> bytes:
    data = value.encode()
    return len(data).to_bytes(2, "big") + data


def _huge_publish(port: int, device_id: str, password: str | None, size: int) -> tuple[bool, bool]:
    """Connect (MQTT 3.1.1) and publish `size` bytes at QoS 1, streamed in chunks (the test holds none
    of it). Returns (the broker closed the connection, a PUBACK came)."""
    flags = 0x82 | (0x40 if password is not None else 0)  # username (+ password), clean session
    variable = _text("MQTT") + bytes([4, flags]) + (60).to_bytes(2, "big")
    payload = _text(device_id) + _text(device_id) + (_text(password) if password is not None else b"")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"\x10" + _varint(len(variable) + len(payload)) + variable + payload)
        connack = sock.recv(4)
        assert connack[:1] == b"\x20" and connack[3:4] == b"\x00", connack
        topic = _text(f"ef/v1/{device_id}/event")
        sock.sendall(b"\x32" + _varint(len(topic) + 2 + size) + topic + (1).to_bytes(2, "big"))
        chunk, sent, closed = b"x" * 65536, 0, False
        try:
            while sent < size:
                sock.sendall(chunk[: size - sent])
                sent += min(len(chunk), size - sent)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        answer = b""
        sock.settimeout(3)
        try:
            while True:
                data = sock.recv(4096)
                if not data:
                    closed = True
                    break
                answer += data
        except ConnectionResetError:
            closed = True
        except TimeoutError:
            pass
    return closed, answer[:1] == b"\x40"


def test_the_embedded_broker_refuses_a_huge_publish_before_reading_it(tmp_path: Path) -> None:
    port = free_port()
    with TestClient(create_app(make_settings(tmp_path, broker="embedded", embedded_port=port))) as client:
        owner = sign_up(client, "own@example.com")
        created = client.post("/api/v1/devices", json={"id": "big-1"}, headers=owner.headers).json()
        claim = {"device_id": "big-1", "claim_token": created["claim_token"]}
        password = client.post("/api/v1/devices/claim", json=claim).json()["password"]
        tracemalloc.start()
        try:
            start = time.monotonic()
            closed, acked = _huge_publish(port, "big-1", password, 10 * 1024 * 1024)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert closed and not acked, (closed, acked)
        assert peak < 4_000_000, f"{peak / 1e6:.1f} MB held for a refused packet"
        assert time.monotonic() - start < 15
        # a device message of the largest allowed size still passes the broker
        closed, acked = _huge_publish(port, "big-1", password, MAX_PAYLOAD_BYTES)
        assert acked, "a 64 KiB message must still be accepted by the broker"
    from edgefleet.server.broker import MAX_PACKET_BYTES

    assert MAX_PACKET_BYTES == MAX_PAYLOAD_BYTES + 4096


@pytest.mark.needs("mosquitto")
def test_mosquitto_with_the_documented_settings_refuses_a_huge_publish(mosquitto: MosquittoBroker) -> None:
    mosquitto.stop()
    mosquitto.extra_config = BROKER_SETTINGS
    mosquitto.start()
    closed, acked = _huge_publish(mosquitto.port, "big-2", None, 10 * 1024 * 1024)
    assert closed and not acked
    closed, acked = _huge_publish(mosquitto.port, "big-2", None, MAX_PAYLOAD_BYTES)
    assert acked
    assert f"\nmax_packet_size {MAX_PAYLOAD_BYTES + 4096}\n" in BROKER_SETTINGS
