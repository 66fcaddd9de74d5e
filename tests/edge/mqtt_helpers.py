"""A test subscriber that decodes everything devices publish with the contracts, and optionally plays
a tiny ingest: it acknowledges on each device's `ack` topic what it received ("stored").

The tests of the device side of delivery use this instead of the server, so they do not depend on
the server's ingest; it acknowledges what the server's ingest acknowledges (event, telemetry,
sample, ota_state; not status) and batches acknowledgements as the server does (one `Ack` per
device per pass, merged ranges)."""

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet.contracts import (
    MAX_ACK_RANGES,
    Ack,
    Channel,
    ContractError,
    DeviceMessage,
    Event,
    Message,
    Status,
    Telemetry,
    ack_ranges,
    decode_topic,
    encode,
    fleet_subscription,
    topic_for,
    utc_now,
)

if TYPE_CHECKING:
    from edgefleet.edge.config import DeviceConfig
    from edgefleet.edge.device import Device

ACKED = (Channel.EVENT, Channel.TELEMETRY, Channel.SAMPLE, Channel.OTA_STATE)


class Collector:
    """Subscribes to `ef/v1/+/#` with QoS 1 and a persistent session, keeps decoded messages.

    With `ack=True` it is a fake ingest: every `ack_every_s` it publishes, per device, one `Ack`
    covering the seqs received since the last one (while `acking` is set). `reconnect_delay_s`
    delays its reconnects after a broker restart (devices may then reconnect first and publish
    into a broker with nobody subscribed)."""

    def __init__(
        self,
        url: str,
        client_id: str = "collector",
        *,
        ack: bool = False,
        ack_every_s: float = 0.02,
        reconnect_delay_s: tuple[int, int] = (1, 2),
    ) -> None:
        parsed = urlparse(url)
        self.messages: list[tuple[str, Message]] = []
        self.invalid: list[str] = []
        self.received: Counter[tuple[str, int]] = Counter()  # (device, seq) of acknowledged channels
        self.acks_sent = 0
        self.lock = threading.Lock()
        self.acking = threading.Event()
        self._to_ack: dict[str, set[int]] = defaultdict(set)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.reconnect_delay_set(*reconnect_delay_s)
        self.client.connect(parsed.hostname or "127.0.0.1", parsed.port or 1883)
        self.client.loop_start()
        self._closed = threading.Event()
        self._acker: threading.Thread | None = None
        if ack:
            self.acking.set()
            self._acker = threading.Thread(target=self._ack_loop, args=(ack_every_s,), daemon=True)
            self._acker.start()

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, p: object = None
    ) -> None:
        client.subscribe(fleet_subscription(), qos=1)  # on every connect: a crashed broker forgets

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            address, decoded = decode_topic(message.topic, bytes(message.payload))
        except ContractError as err:
            with self.lock:
                self.invalid.append(f"{message.topic}: {err}")
            return
        if isinstance(decoded, Ack):
            return  # our own acknowledgements
        with self.lock:
            self.messages.append((message.topic, decoded))
            if address.channel in ACKED and isinstance(decoded, DeviceMessage):
                self.received[(decoded.device_id, decoded.seq)] += 1
                self._to_ack[decoded.device_id].add(decoded.seq)

    def _ack_loop(self, every_s: float) -> None:
        while not self._closed.wait(every_s):
            if not self.acking.is_set() or not self.client.is_connected():
                continue
            with self.lock:
                batch = {d: seqs for d, seqs in self._to_ack.items() if seqs}
                self._to_ack = defaultdict(set)
            for device_id, seqs in batch.items():
                ranges = ack_ranges(seqs)
                for i in range(0, len(ranges), MAX_ACK_RANGES):
                    ack = Ack(device_id=device_id, ts=utc_now(), ranges=ranges[i : i + MAX_ACK_RANGES])
                    self.client.publish(topic_for(device_id, Channel.ACK), encode(ack), qos=1)
                    self.acks_sent += 1

    def close(self) -> None:
        self._closed.set()
        if self._acker is not None:
            self._acker.join(5)
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

    def seqs(self, device_id: str) -> set[int]:
        """Distinct seqs received from a device on the acknowledged channels: what a server stores."""
        with self.lock:
            return {seq for d, seq in self.received if d == device_id}

    def duplicates(self, device_id: str) -> int:
        """Arrivals beyond the first of the same (device_id, seq): resends the server deduplicates."""
        with self.lock:
            return sum(n - 1 for (d, _), n in self.received.items() if d == device_id)

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


def toggling_faults(period_s: float = 4.0, until_s: float = 4000.0) -> str:
    """Imbalance on and off every `period_s` seconds of sensor time: a steady stream of events."""
    items: list[str] = []
    t = period_s
    while t < until_s:
        items.append(f"imbalance@{t:g}x2" if len(items) % 2 == 0 else f"normal@{t:g}")
        t += period_s
    return ",".join(items)


class Running:
    """A device running in a thread at `speed` x real time."""

    def __init__(self, device: "Device", speed: float) -> None:
        self.device = device
        self.stop = threading.Event()
        device.start(sync_clock=False)
        self.thread = threading.Thread(target=device.run, args=(self.stop,), kwargs={"speed": speed})
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.device.close()


def delivery_config(url: str, outbox: Path, device_id: str, **mqtt: object) -> "DeviceConfig":
    """A device that reconnects fast and resends after 1 s (at most 4 s apart), telemetry every 2 s."""
    from edgefleet.edge.clock import ClockConfig
    from edgefleet.edge.config import DeviceConfig, MqttConfig, OutboxConfig

    return DeviceConfig(
        device_id=device_id,
        mqtt=MqttConfig.model_validate(
            {
                "url": url,
                "backoff_min_s": 0.05,
                "backoff_max_s": 0.5,
                "keepalive_s": 5,
                "ack_timeout_s": 1.0,
                "ack_timeout_max_s": 4.0,
                **mqtt,
            }
        ),
        outbox=OutboxConfig(directory=outbox),
        clock=ClockConfig(enabled=False),
        telemetry_interval_s=2.0,
    )


class Recorded(list[int]):
    """The seqs a device stored in its outbox, and how many messages it could not store."""

    not_stored = 0


def recording(device: "Device") -> Recorded:
    """Record every seq the device stores in its outbox from now on."""
    stored = Recorded()
    put = device.outbox.put

    def recorded(*args: object, **kwargs: object) -> int | None:
        seq = put(*args, **kwargs)  # type: ignore[arg-type]
        if seq is None:
            stored.not_stored += 1
        else:
            stored.append(seq)
        return seq

    device.outbox.put = recorded  # type: ignore[method-assign]
    return stored
