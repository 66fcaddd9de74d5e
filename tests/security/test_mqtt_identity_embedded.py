"""MQTT identity on the embedded broker (issue 18): wildcard usernames, foreign topics, the ingest's
name. Mosquitto's side is in test_mqtt_identity.py; client id == device id in test_embedded_broker.py."""

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from edgefleet.contracts import Channel, encode, topic_for
from edgefleet.server import create_app
from tests.server import seed
from tests.server.conftest import make_settings, sign_up
from tests.server.test_embedded_broker import _connect
from tests.support.services import free_port


def test_wildcards_foreign_topics_and_the_ingest_name_are_refused(tmp_path: Path) -> None:
    port = free_port()
    settings = make_settings(tmp_path, broker="embedded", embedded_port=port, ingest_client_id="emb-ingest")
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "ops@example.com")
        creds = {}
        for device_id in ("lathe-1", "lathe-2"):
            token = client.post("/api/v1/devices", json={"id": device_id}, headers=owner.headers).json()
            claim = {"device_id": device_id, "claim_token": token["claim_token"]}
            creds[device_id] = client.post("/api/v1/devices/claim", json=claim).json()
        secret = creds["lathe-1"]["password"]
        for client_id, username in [
            ("+", "+"),
            ("#", "#"),
            ("lathe-1/#", "lathe-1/#"),
            (settings.ingest_client_id, settings.ingest_username),  # the ingest's name, a device's secret
            ("lathe-1", settings.ingest_username),
        ]:
            with pytest.raises(ConnectionRefusedError):
                _connect(port, client_id, username, secret)
        # device ids that could act as topic wildcards cannot even be added
        for bad in ("+", "#", "a/b", "ef/v1/+"):
            response = client.post("/api/v1/devices", json={"id": bad}, headers=owner.headers)
            assert response.status_code == 422, (bad, response.text)

        received: list[str] = []
        spy = _connect(port, "lathe-1", "lathe-1", secret)
        spy.on_message = lambda _c, _u, message: received.append(message.topic)
        for foreign in ("ef/v1/+/event", "ef/v1/lathe-2/cmd", "ef/v1/lathe-2/ack", "#"):
            spy.subscribe(foreign, qos=1)
        other = _connect(port, "lathe-2", "lathe-2", creds["lathe-2"]["password"])
        try:
            time.sleep(0.3)
            other.publish(topic_for("lathe-2", Channel.EVENT), encode(seed.anomaly("lathe-2", seq=1)), qos=1)
            response = client.post(
                "/api/v1/devices/lathe-2/commands", json={"command": "publish_status"}, headers=owner.headers
            )
            assert response.status_code == 202
            time.sleep(1.0)  # the event is stored and acknowledged, the command sent: none of it to lathe-1
            assert not any("lathe-2" in topic for topic in received), received
        finally:
            for c in (spy, other):
                c.disconnect()
                c.loop_stop()
