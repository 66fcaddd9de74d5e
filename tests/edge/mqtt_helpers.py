"""A test subscriber that decodes everything devices publish with the contracts."""

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet.contracts import (
    ContractError,
    Event,
    Message,
    Status,
    Telemetry,
    decode_topic,
    fleet_subscription,
)


class Collector:
    """Subscribes to `ef/v1/+/#` with QoS 1 and a persistent session, keeps decoded messages."""

    def __init__(self, url: str, client_id: str = "collector") -> None:
        parsed = urlparse(url)
        self.messages: list[tuple[str, Message]] = []
        self.invalid: list[str] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, r, p=None: c.subscribe(fleet_subscription(), qos=1)
        self.client.reconnect_delay_set(1, 2)
        self.client.connect(parsed.hostname or "127.0.0.1", parsed.port or 1883)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            _, decoded = decode_topic(message.topic, bytes(message.payload))
        except ContractError as err:
            with self.lock:
                self.invalid.append(f"{message.topic}: {err}")
            return
        with self.lock:
            self.messages.append((message.topic, decoded))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def of_type(self, cls: type) -> list[Message]:
        with self.lock:
            return [m for _, m in self.messages if isinstance(m, cls)]

    def events(self) -> list[Event]:
        return [m for m in self.of_type(Event) if isinstance(m, Event)]

    def telemetry(self) -> list[Telemetry]:
        return [m for m in self.of_type(Telemetry) if isinstance(m, Telemetry)]

    def statuses(self) -> list[Status]:
        return [m for m in self.of_type(Status) if isinstance(m, Status)]

    def event_seqs_by_device(self) -> dict[str, list[int]]:
        """First arrival of each (device_id, seq), in arrival order: what the server would store."""
        seen: set[tuple[str, int]] = set()
        out: dict[str, list[int]] = defaultdict(list)
        for event in self.events():
            key = (event.device_id, event.seq)
            if key not in seen:
                seen.add(key)
                out[event.device_id].append(event.seq)
        return out

    def wait_for(self, condition: Callable[[], bool], timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        return condition()
