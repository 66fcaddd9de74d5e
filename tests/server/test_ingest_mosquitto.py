"""Ingest against a real Mosquitto: end to end, no loss across restarts, commands, credential sync."""

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from edgefleet.contracts import Channel, Command, decode
from edgefleet.server import create_app
from edgefleet.server.app import build_context
from edgefleet.server.certs import make_certificates
from edgefleet.server.db import upgrade
from edgefleet.server.mosquitto import MosquittoSync
from tests.server import seed
from tests.server.conftest import make_settings, sign_up
from tests.server.mqtt_helpers import device_client, publish, wait_until
from tests.support.services import MosquittoBroker, free_port, wait_for_port

pytestmark = pytest.mark.needs("mosquitto")


def _event_count(client: TestClient, headers: dict[str, str], device_id: str) -> int:
    total, cursor = 0, None
    while True:
        params = {"device_id": device_id, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/events", params=params, headers=headers).json()
        total += len(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return total


def _add_device(client: TestClient, headers: dict[str, str], device_id: str) -> dict[str, str]:
    created = client.post("/api/v1/devices", json={"id": device_id}, headers=headers).json()
    claimed = client.post(
        "/api/v1/devices/claim", json={"device_id": device_id, "claim_token": created["claim_token"]}
    )
    assert claimed.status_code == 200, claimed.text
    creds: dict[str, str] = claimed.json()
    return creds


def test_events_flow_from_the_broker_to_the_api_once(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    settings = make_settings(tmp_path, broker=mosquitto.url, ingest_client_id="ingest-e2e")
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "ops@example.com")
        _add_device(client, owner.headers, "press-1")
        with device_client(mosquitto.port, "press-1") as device:
            publish(device, seed.status("press-1"), Channel.STATUS)
            events = [seed.anomaly("press-1", seq=n) for n in range(1, 21)]
            for event in events + events[:5]:  # the last five are resends
                publish(device, event, Channel.EVENT)
            publish(device, seed.anomaly("press-1", seq=99), Channel.EVENT, topic="ef/v1/other-dev/event")
            wait_until(lambda: _event_count(client, owner.headers, "press-1") == 20, what="20 events")
        device_row = client.get("/api/v1/devices/press-1", headers=owner.headers).json()
        assert device_row["online"] is True and device_row["last_seen"] is not None
        alarms = client.get("/api/v1/alarms", headers=owner.headers).json()
        assert len(alarms) == 1 and alarms[0]["event_count"] == 20
        metrics = client.get("/metrics", headers=owner.headers).text
        assert 'edgefleet_ingest_stored_total{channel="event"} 20.0' in metrics
        assert "edgefleet_ingest_duplicates_total 5.0" in metrics
        wait_until(
            lambda: 'reason="device_mismatch"} 1.0' in client.get("/metrics", headers=owner.headers).text,
            what="reject count",
        )


def test_a_server_restart_loses_nothing(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    settings = make_settings(tmp_path, broker=mosquitto.url, ingest_client_id="ingest-restart")
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "ops@example.com")
        _add_device(client, owner.headers, "lathe-1")
    # the server is down; the broker holds QoS 1 messages for the persistent ingest session
    with device_client(mosquitto.port, "lathe-1") as device:
        for n in range(1, 201):
            publish(device, seed.anomaly("lathe-1", seq=n), Channel.EVENT)
    with TestClient(create_app(settings)) as client:
        wait_until(
            lambda: _event_count(client, owner.headers, "lathe-1") == 200, 20, "200 events after restart"
        )
        time.sleep(0.5)  # anything redelivered late must not add rows
        assert _event_count(client, owner.headers, "lathe-1") == 200


def _reconfigure(broker: MosquittoBroker, extra: str) -> None:
    """Restart the test's broker with more configuration (password and ACL files)."""
    broker.stop()
    broker.extra_config = extra
    broker.start()


def test_a_broker_restart_loses_nothing(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    """With a plain subscription: Mosquitto 2.0.11 does not restore *shared* subscriptions from its
    persistence file, so shared ingest loses what arrives between a broker restart and its resubscribe."""
    settings = make_settings(
        tmp_path, broker=mosquitto.url, ingest_client_id="ingest-broker-restart", ingest_shared=False
    )
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "ops@example.com")
        _add_device(client, owner.headers, "mill-1")
        mosquitto.stop()
        mosquitto.start()
        with device_client(mosquitto.port, "mill-1") as device:
            for n in range(1, 51):
                publish(device, seed.anomaly("mill-1", seq=n), Channel.EVENT)
        wait_until(
            lambda: _event_count(client, owner.headers, "mill-1") == 50, 20, "50 events after reconnect"
        )
        time.sleep(0.5)  # anything redelivered late must not add rows
        assert _event_count(client, owner.headers, "mill-1") == 50


def test_commands_reach_the_device(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    settings = make_settings(tmp_path, broker=mosquitto.url, ingest_client_id="ingest-cmd")
    received: list[bytes] = []
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "ops@example.com")
        _add_device(client, owner.headers, "pump-1")
        with device_client(mosquitto.port, "pump-1") as device:
            device.on_message = lambda _c, _u, msg: received.append(bytes(msg.payload))
            device.subscribe("ef/v1/pump-1/cmd", qos=1)
            time.sleep(0.3)
            response = client.post(
                "/api/v1/devices/pump-1/commands", json={"command": "recommission"}, headers=owner.headers
            )
            assert response.status_code == 202
            wait_until(lambda: bool(received), what="command")
    command = decode(Channel.CMD, received[0])
    assert isinstance(command, Command) and command.command == "recommission"
    assert command.command_id == response.json()["command_id"]


def test_mosquitto_credentials_and_acl_follow_the_device_table(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    password_file, acl_file, pid_file = tmp_path / "passwd", tmp_path / "acl", tmp_path / "mosquitto.pid"
    settings = make_settings(
        tmp_path,
        broker=mosquitto.url,
        ingest_client_id="ingest-acl",
        mosquitto_password_file=str(password_file),
        mosquitto_acl_file=str(acl_file),
        mosquitto_pid_file=str(pid_file),
    )
    context = build_context(settings)
    upgrade(context.engine)
    MosquittoSync(context.sessions, settings).sync()  # the files must exist before Mosquitto starts
    context.engine.dispose()
    _reconfigure(mosquitto, f"password_file {password_file}\nacl_file {acl_file}\n")
    assert mosquitto.process is not None
    pid_file.write_text(str(mosquitto.process.pid))

    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "ops@example.com")
        creds = _add_device(client, owner.headers, "saw-1")
        _add_device(client, owner.headers, "saw-2")
        time.sleep(0.3)  # SIGHUP is asynchronous
        with pytest.raises(ConnectionRefusedError), device_client(mosquitto.port, "anon"):
            pass
        with pytest.raises(ConnectionRefusedError), device_client(mosquitto.port, "saw-1", "saw-1", "wrong"):
            pass
        with device_client(mosquitto.port, "saw-1", "saw-1", creds["password"]) as device:
            publish(device, seed.anomaly("saw-1", seq=1), Channel.EVENT)
            # impersonation: saw-1 publishing under saw-2's topic is dropped by the broker's ACL
            publish(device, seed.anomaly("saw-2", seq=1), Channel.EVENT)
            wait_until(lambda: _event_count(client, owner.headers, "saw-1") == 1, what="saw-1's event")
            time.sleep(0.3)
            assert _event_count(client, owner.headers, "saw-2") == 0
        assert client.post("/api/v1/devices/saw-1/revoke", headers=owner.headers).status_code == 200
        time.sleep(0.3)
        with (
            pytest.raises(ConnectionRefusedError),
            device_client(mosquitto.port, "saw-1", "saw-1", creds["password"]),
        ):
            pass


def test_ingest_over_tls_with_the_generated_certificates(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    issued = make_certificates(tmp_path / "certs", ["127.0.0.1"], [])
    tls_port = free_port()
    _reconfigure(
        mosquitto,
        f"listener {tls_port} 127.0.0.1\ncafile {issued['ca'].cert}\n"
        f"certfile {issued['server'].cert}\nkeyfile {issued['server'].key}\n",
    )
    wait_for_port(tls_port)
    settings = make_settings(
        tmp_path,
        broker=f"mqtts://127.0.0.1:{tls_port}",
        mqtt_ca_file=str(issued["ca"].cert),
        ingest_client_id="ingest-tls",
    )
    with TestClient(create_app(settings)) as client:
        owner = sign_up(client, "ops@example.com")
        _add_device(client, owner.headers, "tls-1")
        with device_client(mosquitto.port, "tls-1") as device:  # the device side on the plain listener
            publish(device, seed.anomaly("tls-1", seq=1), Channel.EVENT)
        wait_until(lambda: _event_count(client, owner.headers, "tls-1") == 1, what="event via the TLS ingest")
    untrusted = make_settings(
        tmp_path, broker=f"mqtts://127.0.0.1:{tls_port}", ingest_client_id="ingest-tls-2"
    )
    with TestClient(create_app(untrusted)) as client:  # system CAs do not know our CA: degraded, says why
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["ingest"]["status"] == "connecting"
        assert "certificate verify failed" in ready.json()["ingest"]["detail"]
