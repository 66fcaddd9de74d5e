"""The embedded amqtt broker: device auth against the device table, per-device ACL, ingest through it,
and the amqtt defects `FleetBroker` fixes (broadcast race, QoS 1 loss, retained messages past the ACL)."""

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.orm import sessionmaker

from edgefleet.contracts import Channel, encode, topic_for
from edgefleet.server import create_app
from edgefleet.server.broker import DeviceAuthority, EmbeddedBroker, _matches
from tests.server import seed
from tests.server.conftest import INGEST_PASSWORD, make_settings, sign_up
from tests.server.mqtt_helpers import wait_until
from tests.support.services import free_port

INGEST_USER = "edgefleet-ingest"


def _connect(
    port: int, client_id: str, username: str | None, password: str | None, inflight: int = 20
) -> mqtt.Client:
    """An MQTT 3.1.1 client (amqtt's protocol); raises ConnectionRefusedError when refused."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(inflight)
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


class _AnyDevice(DeviceAuthority):
    """The real ACL; any device id connects (with client id == username), no database."""

    def authenticate(self, username: str | None, password: str | None, client_id: str | None) -> bool:
        if username == INGEST_USER:
            return password == INGEST_PASSWORD
        return username is not None and username == client_id


@contextmanager
def _broker() -> Iterator[EmbeddedBroker]:
    """An embedded broker on its own event loop thread, as in the server."""
    broker = EmbeddedBroker(
        _AnyDevice(sessionmaker(), INGEST_USER, INGEST_PASSWORD), "127.0.0.1", free_port()
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(broker.start(), loop).result(10)
    try:
        yield broker
    finally:
        asyncio.run_coroutine_threadsafe(broker.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


class _Watcher:
    """A subscriber that records the `seq` of every message it receives; `stall_s` blocks on the first."""

    def __init__(self, port: int, topic_filter: str, stall_s: float = 0.0) -> None:
        self.seqs: list[int] = []
        self._stall_s = stall_s
        self.client = _connect(port, f"watcher-{free_port()}", INGEST_USER, INGEST_PASSWORD)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.subscribe(topic_filter, qos=1)
        assert subscribed.wait(5)

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        if self._stall_s and not self.seqs:
            time.sleep(self._stall_s)  # PUBACKs stop: the broker's 5 s PUBACK timeout passes
        self.seqs.append(int(json.loads(message.payload)["seq"]))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _publish_events(port: int, device_id: str, count: int) -> None:
    device = _connect(port, device_id, device_id, "x", inflight=100)
    try:
        infos = [
            device.publish(topic_for(device_id, Channel.EVENT), encode(seed.anomaly(device_id, seq=n)), qos=1)
            for n in range(1, count + 1)
        ]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        device.disconnect()
        device.loop_stop()


def test_subscribing_while_the_broker_broadcasts_loses_no_message() -> None:
    """amqtt 0.12 iterated the live subscription table across awaits: a client subscribing meanwhile
    raised "dictionary changed size during iteration" and the message being broadcast reached nobody."""
    count = 1500
    with _broker() as broker:
        watcher = _Watcher(broker.port, "ef/v1/+/event")
        stop = threading.Event()

        def churn(n: int) -> None:  # devices come and go, each (un)subscribing its own command topics
            while not stop.is_set():
                device_id = f"churn-{n}-{free_port()}"
                client = _connect(broker.port, device_id, device_id, "x")
                done = threading.Event()
                client.on_subscribe = lambda *_a, done=done: done.set()
                client.subscribe(
                    [(topic_for(device_id, Channel.CMD), 1), (topic_for(device_id, Channel.OTA_CMD), 1)]
                )
                done.wait(5)
                client.disconnect()
                client.loop_stop()

        churners = [threading.Thread(target=churn, args=(n,), daemon=True) for n in range(4)]
        for thread in churners:
            thread.start()
        try:
            _publish_events(broker.port, "press-1", count)
            wait_until(lambda: len(set(watcher.seqs)) >= count, 30, f"{count} events at the watcher")
        finally:
            stop.set()
            for thread in churners:
                thread.join(10)
            watcher.close()
        assert set(watcher.seqs) == set(range(1, count + 1))


def test_a_subscriber_that_stalls_past_the_puback_timeout_still_gets_every_message() -> None:
    """amqtt 0.12 dropped a QoS 1 message when its PUBACK took more than 5 s; now it sends it again."""
    count = 300
    with _broker() as broker:
        watcher = _Watcher(broker.port, "ef/v1/+/event", stall_s=6.0)
        try:
            _publish_events(broker.port, "press-2", count)
            wait_until(lambda: len(set(watcher.seqs)) >= count, 40, f"{count} events at the watcher")
        finally:
            watcher.close()
        assert set(watcher.seqs) == set(range(1, count + 1))


def test_a_device_never_receives_another_devices_retained_messages() -> None:
    """amqtt sent a connecting client the retained messages of every filter anyone subscribed to."""
    with _broker() as broker:
        watcher = _Watcher(broker.port, "ef/v1/+/status")  # someone subscribes to all statuses
        other = _connect(broker.port, "kiln-9", "kiln-9", "x")
        other.publish(topic_for("kiln-9", Channel.STATUS), encode(seed.status("kiln-9")), qos=1, retain=True)
        wait_until(lambda: len(watcher.seqs) == 1, what="the retained status at the watcher")
        other.disconnect()
        other.loop_stop()
        received: list[str] = []
        device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="kiln-10", protocol=mqtt.MQTTv311)
        device.username_pw_set("kiln-10", "x")
        device.on_message = lambda _c, _u, message: received.append(message.topic)
        device.on_connect = lambda c, *_a: c.subscribe(topic_for("kiln-10", Channel.CMD), qos=1)
        device.connect("127.0.0.1", broker.port)
        device.loop_start()
        try:
            time.sleep(1.0)
        finally:
            device.disconnect()
            device.loop_stop()
            watcher.close()
        assert received == []
