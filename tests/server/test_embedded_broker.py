"""The embedded amqtt broker: device auth against the device table, per-device ACL, ingest through it."""

import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet.contracts import Channel, encode, topic_for
from edgefleet.server import create_app
from edgefleet.server.broker import _matches
from tests.server import seed
from tests.server.conftest import make_settings, sign_up
from tests.server.mqtt_helpers import wait_until
from tests.support.services import free_port


def _connect(port: int, client_id: str, username: str | None, password: str | None) -> mqtt.Client:
    """An MQTT 3.1.1 client (amqtt's protocol); raises ConnectionRefusedError when refused."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    if username:
        client.username_pw_set(username, password)
    result: list[bool] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: result.append(not reason.is_failure)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_until(lambda: bool(result), 2, "CONNACK")
    except AssertionError:  # amqtt may close the socket without a CONNACK
        result.append(False)
    if not result[0]:
        client.loop_stop()
        raise ConnectionRefusedError(client_id)
    return client


def _events(client: TestClient, headers: dict[str, str], device_id: str) -> int:
    page = client.get("/api/v1/events", params={"device_id": device_id}, headers=headers).json()
    return len(page["items"])


def test_embedded_broker_authenticates_devices_and_enforces_their_topics(tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings(
        tmp_path, broker="embedded", embedded_port=port, ingest_client_id="embedded-ingest"
    )
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "ops@example.com")
        creds = {}
        for device_id in ("kiln-1", "kiln-2"):
            token = client.post("/api/v1/devices", json={"id": device_id}, headers=owner.headers).json()
            claim = {"device_id": device_id, "claim_token": token["claim_token"]}
            creds[device_id] = client.post("/api/v1/devices/claim", json=claim).json()
        assert creds["kiln-1"]["broker_url"] == f"mqtt://127.0.0.1:{port}"
        for client_id, user, password in [
            ("anon", None, None),
            ("kiln-1", "kiln-1", "wrong"),
            ("other-id", "kiln-1", creds["kiln-1"]["password"]),  # client id must be the device id
        ]:
            with pytest.raises(ConnectionRefusedError):
                _connect(port, client_id, user, password)

        device = _connect(port, "kiln-1", "kiln-1", creds["kiln-1"]["password"])
        try:
            device.publish(topic_for("kiln-1", Channel.EVENT), encode(seed.anomaly("kiln-1", seq=1)), qos=1)
            # impersonation: the broker drops kiln-1's publish under kiln-2's topic
            device.publish(topic_for("kiln-2", Channel.EVENT), encode(seed.anomaly("kiln-2", seq=1)), qos=1)
            wait_until(lambda: _events(client, owner.headers, "kiln-1") == 1, what="kiln-1's event")
            time.sleep(0.3)
            assert _events(client, owner.headers, "kiln-2") == 0
        finally:
            device.disconnect()
            device.loop_stop()

        client.post("/api/v1/devices/kiln-1/revoke", headers=owner.headers)
        with pytest.raises(ConnectionRefusedError):
            _connect(port, "kiln-1", "kiln-1", creds["kiln-1"]["password"])


def test_topic_matching() -> None:
    assert _matches("ef/v1/+/cmd", "ef/v1/a/cmd")
    assert not _matches("ef/v1/+/cmd", "ef/v1/a/b/cmd")
    assert _matches("ef/#", "ef/v1/a")
    assert not _matches("ef/v1/+/cmd", "ef/v1/a")
