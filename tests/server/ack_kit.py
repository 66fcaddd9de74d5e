"""A test device that listens on its `ack` topic, as a device keeping an outbox would."""

import json
import threading
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgefleet.contracts import Ack, Channel, DeviceMessage, decode, encode, topic_for
from tests.server.mqtt_helpers import wait_until

SESSION_EXPIRY_S = 3600


class AckDevice:
    """Connects (persistent session when asked), subscribes to its own `ack` topic on every connect and
    collects what arrives there; publishes at QoS 1 and waits for the broker's PUBACK."""

    def __init__(
        self,
        port: int,
        device_id: str,
        *,
        password: str | None = None,
        mqtt5: bool = True,
        persistent: bool = False,
        ack_topic: str | None = None,
        max_inflight: int = 20,
    ) -> None:
        self.port = port
        self.device_id = device_id
        self.ack_topic = ack_topic or topic_for(device_id, Channel.ACK)
        self.persistent = persistent
        self.mqtt5 = mqtt5
        self.acks: list[Ack] = []
        self.foreign: list[tuple[str, bytes]] = []
        self.granted: list[int] = []
        self._lock = threading.Lock()
        self._suback = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=device_id,
            protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
            clean_session=None if mqtt5 else not persistent,
        )
        self.client.max_inflight_messages_set(max_inflight)
        # its id as username too: Mosquitto with the documented settings (`use_username_as_clientid`)
        # refuses clients without one, even where anonymous access is allowed
        self.client.username_pw_set(device_id, password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # --- connection ------------------------------------------------------------------------------
    def connect(self, timeout: float = 10.0) -> "AckDevice":
        self._suback.clear()
        if self.mqtt5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = SESSION_EXPIRY_S if self.persistent else 0
            self.client.connect(
                "127.0.0.1", self.port, clean_start=not self.persistent, properties=properties
            )
        else:
            self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        if not self._suback.wait(timeout):
            self.disconnect()
            raise AssertionError(f"{self.device_id}: no SUBACK for {self.ack_topic}")
        return self

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> "AckDevice":
        return self.connect()

    def __exit__(self, *_exc: object) -> None:
        self.disconnect()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if not reason.is_failure:
            client.subscribe(self.ack_topic, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        self.granted = [r.value for r in reasons]
        self._suback.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        payload = bytes(message.payload)
        with self._lock:
            if message.topic != topic_for(self.device_id, Channel.ACK):
                self.foreign.append((message.topic, payload))
                return
            ack = decode(Channel.ACK, payload)
            assert isinstance(ack, Ack)
            self.acks.append(ack)

    # --- what arrived ----------------------------------------------------------------------------
    def covered(self) -> set[int]:
        with self._lock:
            return {seq for ack in self.acks for seq in ack.covers()}

    def wait_covered(self, seqs: set[int], timeout: float = 15.0) -> None:
        wait_until(lambda: seqs <= self.covered(), timeout, f"acks of {sorted(seqs - self.covered())}")

    # --- publishing ------------------------------------------------------------------------------
    def send(self, message: DeviceMessage, channel: Channel) -> None:
        self.send_raw(topic_for(self.device_id, channel), encode(message))

    def send_raw(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        assert info.is_published(), f"no PUBACK for {topic}"


def bad_event(device_id: str, seq: int, **changes: object) -> bytes:
    """An anomaly event without `score` (invalid), or with `changes` applied to a valid payload."""
    payload: dict[str, object] = {
        "schema": 1,
        "ts": datetime.now(UTC).isoformat(),
        "device_id": device_id,
        "seq": seq,
        "kind": "anomaly",
        "threshold": 0.5,
    }
    payload.update(changes)
    return json.dumps(payload).encode()


def add_device(client: TestClient, headers: dict[str, str], device_id: str) -> dict[str, str]:
    """Add and claim a device through the API; returns its MQTT credentials."""
    created = client.post("/api/v1/devices", json={"id": device_id}, headers=headers).json()
    claimed = client.post(
        "/api/v1/devices/claim", json={"device_id": device_id, "claim_token": created["claim_token"]}
    )
    assert claimed.status_code == 200, claimed.text
    creds: dict[str, str] = claimed.json()
    return creds


def metric(client: TestClient, headers: dict[str, str], line_prefix: str) -> float | None:
    """The value of the first `/metrics` sample line starting with `line_prefix`."""
    for line in client.get("/metrics", headers=headers).text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    return None
