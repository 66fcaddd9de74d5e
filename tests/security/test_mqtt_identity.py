"""MQTT identity on a real Mosquitto with the documented settings (issue 18, finding 1).

Before: the generated configuration did not tie client ids to usernames. A device of organization A
connecting with the ingest's client id disconnected the ingest and took over its persistent session
(`session_present`), so organization B's messages published meanwhile went to the device and were
never stored; a device could also disconnect any other device by using its id. Now
`use_username_as_clientid` (BROKER_SETTINGS) makes every client's id its username.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.client import ConnectFlags
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgefleet.contracts import Channel
from edgefleet.server import ServerSettings, create_app
from edgefleet.server.app import build_context
from edgefleet.server.db import transaction, upgrade
from edgefleet.server.db.models import Device, Organization
from edgefleet.server.mosquitto import BROKER_SETTINGS, MosquittoSync
from tests.server import seed
from tests.server.conftest import Account, make_settings, sign_up
from tests.server.mqtt_helpers import device_client, publish, wait_until
from tests.support.services import MosquittoBroker

pytestmark = pytest.mark.needs("mosquitto")
INGEST_CLIENT_ID = "edgefleet-ingest-1"  # the default


@dataclass
class Fleet:
    client: TestClient
    port: int
    settings: ServerSettings
    owners: dict[str, Account]
    passwords: dict[str, str] = field(default_factory=dict)

    def stored(self, device_id: str) -> int:
        page = self.client.get(
            "/api/v1/events",
            params={"device_id": device_id, "limit": 1000},
            headers=self.owners[device_id].headers,
        )
        return len(page.json()["items"])


def _claim(client: TestClient, owner: Account, device_id: str) -> str:
    created = client.post("/api/v1/devices", json={"id": device_id}, headers=owner.headers).json()
    claimed = client.post(
        "/api/v1/devices/claim", json={"device_id": device_id, "claim_token": created["claim_token"]}
    )
    assert claimed.status_code == 200, claimed.text
    password: str = claimed.json()["password"]
    return password


@pytest.fixture
def fleet(tmp_path: Path, mosquitto: MosquittoBroker) -> Iterator[Fleet]:
    """The server's ingest on a Mosquitto configured as documented (BROKER_SETTINGS, the generated
    password and ACL files); organization A owns device a-1, organization B owns b-1."""
    files = {name: tmp_path / name for name in ("passwd", "acl", "mosquitto.pid")}
    settings = make_settings(
        tmp_path,
        broker=mosquitto.url,
        mosquitto_password_file=str(files["passwd"]),
        mosquitto_acl_file=str(files["acl"]),
        mosquitto_pid_file=str(files["mosquitto.pid"]),
    )
    assert settings.ingest_client_id == INGEST_CLIENT_ID
    context = build_context(settings)
    upgrade(context.engine)
    MosquittoSync(context.sessions, settings).sync()  # the files must exist before Mosquitto starts
    context.engine.dispose()
    mosquitto.stop()
    mosquitto.extra_config = f"{BROKER_SETTINGS}password_file {files['passwd']}\nacl_file {files['acl']}\n"
    mosquitto.start()
    assert mosquitto.process is not None
    files["mosquitto.pid"].write_text(str(mosquitto.process.pid))
    with TestClient(create_app(settings)) as client:
        a, b = sign_up(client, "ops@example.com", "A"), sign_up(client, "bea@example.com", "B")
        fleet = Fleet(client, mosquitto.port, settings, {"a-1": a, "b-1": b})
        fleet.passwords = {"a-1": _claim(client, a, "a-1"), "b-1": _claim(client, b, "b-1")}
        time.sleep(0.5)  # Mosquitto re-reads the files on SIGHUP
        wait_until(lambda: client.get("/readyz").status_code == 200, 10, "the ingest connected")
        yield fleet


@dataclass
class Session:
    client: mqtt.Client
    session_present: bool
    received: list[str] = field(default_factory=list)
    disconnects: list[str] = field(default_factory=list)


@contextmanager
def _connect(port: int, client_id: str, username: str, password: str) -> Iterator[Session]:
    """A persistent MQTT 5 session (clean start off, an hour's expiry), as the ingest keeps one."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    connected = threading.Event()
    flags: list[bool] = []
    session = Session(client, False)

    def on_connect(_c: mqtt.Client, _u: object, f: ConnectFlags, _r: ReasonCode, _p: object) -> None:
        flags.append(f.session_present)
        connected.set()

    client.on_connect = on_connect
    client.on_message = lambda _c, _u, message: session.received.append(message.topic)
    client.on_disconnect = lambda _c, _u, _f, reason, _p: session.disconnects.append(str(reason))
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=False, properties=properties)
    client.loop_start()
    try:
        assert connected.wait(5), "no CONNACK"
        session.session_present = flags[0]
        yield session
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.parametrize("client_id", [INGEST_CLIENT_ID, "edgefleet-ingest"])
def test_a_device_cannot_take_over_the_ingest_session(fleet: Fleet, client_id: str) -> None:
    with _connect(fleet.port, client_id, "a-1", fleet.passwords["a-1"]) as attacker:
        assert not attacker.session_present, "the device got the ingest's session"
        time.sleep(0.5)
        with device_client(fleet.port, "b-1", "b-1", fleet.passwords["b-1"]) as victim:
            for seq in (10, 11, 12):
                publish(victim, seed.anomaly("b-1", seq=seq), Channel.EVENT)
        wait_until(lambda: fleet.stored("b-1") == 3, 10, "organization B's events stored")
        time.sleep(0.5)
        assert attacker.received == [], "organization B's messages reached organization A's device"
    assert fleet.client.get("/readyz").status_code == 200


def test_a_device_cannot_disconnect_another_device(fleet: Fleet) -> None:
    with _connect(fleet.port, "b-1", "b-1", fleet.passwords["b-1"]) as victim:
        with _connect(fleet.port, "b-1", "a-1", fleet.passwords["a-1"]) as attacker:
            time.sleep(1.0)
            assert not attacker.session_present
        assert victim.disconnects == [], "a-1 disconnected b-1 by connecting with its client id"
        assert victim.client.is_connected()
        info = victim.client.publish("ef/v1/b-1/event", seed_payload("b-1", 20), qos=1)
        info.wait_for_publish(5)
        wait_until(lambda: fleet.stored("b-1") == 1, 10, "b-1's event after the attempt")


def seed_payload(device_id: str, seq: int) -> bytes:
    from edgefleet.contracts import encode

    return encode(seed.anomaly(device_id, seq=seq))


def test_clients_without_a_username_are_refused(fleet: Fleet) -> None:
    with pytest.raises(ConnectionRefusedError), device_client(fleet.port, "a-1"):
        pass


@pytest.mark.parametrize("device_id", ["edgefleet-ingest", "edgefleet-ingest-2", "EdgeFleet-Ingest-7"])
def test_a_device_cannot_be_named_like_an_ingest_user(fleet: Fleet, device_id: str) -> None:
    owner = fleet.owners["a-1"]
    response = fleet.client.post("/api/v1/devices", json={"id": device_id}, headers=owner.headers)
    assert response.status_code == 422 and "reserved" in response.text


def test_the_password_file_never_gives_a_device_an_ingest_name(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, mosquitto_password_file=str(tmp_path / "passwd"), ingest_usernames=["ingest-a", "ingest-b"]
    )
    context = build_context(settings)
    upgrade(context.engine)
    with transaction(context.sessions) as session:
        org = Organization(name="A")
        session.add(org)
        session.flush()
        session.add_all(
            Device(id=name, org_id=org.id, name=name, kind="vibration", online=False, secret_hash="$7$x")
            for name in ("ingest-b", "press-1")
        )
    try:
        lines = MosquittoSync(context.sessions, settings).password_text().splitlines()
    finally:
        context.engine.dispose()
    assert [line.split(":")[0] for line in lines] == ["edgefleet-ingest", "ingest-a", "ingest-b", "press-1"]
    assert all(line.split(":")[1] != "$7$x" for line in lines[:3])


def _stored_by(client: TestClient, headers: dict[str, str]) -> float:
    for line in client.get("/metrics", headers=headers).text.splitlines():
        if line.startswith('edgefleet_ingest_stored_total{channel="event"}'):
            return float(line.split()[-1])
    return 0.0


def test_two_ingest_workers_with_their_own_usernames_share_the_load(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    """Shared-subscription members each connect with their own username (their client id under
    `use_username_as_clientid`): neither disconnects the other, and every event is stored once."""
    files = {name: tmp_path / name for name in ("passwd", "acl", "mosquitto.pid")}
    common = {
        "broker": mosquitto.url,
        "mosquitto_password_file": str(files["passwd"]),
        "mosquitto_acl_file": str(files["acl"]),
        "mosquitto_pid_file": str(files["mosquitto.pid"]),
        "ingest_usernames": ["ingest-a", "ingest-b"],
    }
    first = make_settings(tmp_path, ingest_username="ingest-a", **common)
    second = make_settings(tmp_path, ingest_username="ingest-b", **common)
    context = build_context(first)
    upgrade(context.engine)
    MosquittoSync(context.sessions, first).sync()
    context.engine.dispose()
    mosquitto.stop()
    mosquitto.extra_config = f"{BROKER_SETTINGS}password_file {files['passwd']}\nacl_file {files['acl']}\n"
    mosquitto.start()
    assert mosquitto.process is not None
    files["mosquitto.pid"].write_text(str(mosquitto.process.pid))
    with TestClient(create_app(first)) as one, TestClient(create_app(second)) as two:
        owner = sign_up(one, "ops@example.com", "A")
        password = _claim(one, owner, "p-1")
        time.sleep(0.5)
        wait_until(lambda: one.get("/readyz").status_code == 200, 10, "the first ingest worker")
        wait_until(lambda: two.get("/readyz").status_code == 200, 10, "the second ingest worker")
        with device_client(mosquitto.port, "p-1", "p-1", password) as device:
            for seq in range(1, 41):
                publish(device, seed.anomaly("p-1", seq=seq), Channel.EVENT)

        def stored() -> int:
            page = one.get(
                "/api/v1/events", params={"device_id": "p-1", "limit": 1000}, headers=owner.headers
            )
            return len(page.json()["items"])

        wait_until(lambda: stored() == 40, 20, "40 events")
        shares = [_stored_by(one, owner.headers), _stored_by(two, owner.headers)]
        assert sum(shares) == 40 and min(shares) > 0, shares  # both members took part, none twice
        assert one.get("/readyz").status_code == two.get("/readyz").status_code == 200
