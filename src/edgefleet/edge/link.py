"""The MQTT link: drains the outbox with QoS 1, reconnects with backoff and jitter, receives commands.

One thread per device runs paho's network loop and the publishing, so paho is only touched from
that thread. A message leaves the outbox only when its PUBACK arrives. Un-acknowledged messages
are re-sent by paho after a reconnect (same connection object), and by the outbox after a restart.
The retained `status` says online (firmware, model); the last will says offline. Commands arrive on
`cmd`, model updates on `ota/cmd` (when the device takes them).
"""

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet.contracts import Channel, Command, ContractError, OtaCommand, decode_topic, topic_for
from edgefleet.edge.config import MqttConfig
from edgefleet.edge.outbox import Outbox

log = logging.getLogger(__name__)


@dataclass
class Backoff:
    """Exponential backoff with full jitter: uniform(min, min(max, min * 2**attempt))."""

    minimum: float
    maximum: float
    attempt: int = 0
    rng: random.Random | None = None

    def next_delay(self) -> float:
        cap = min(self.maximum, self.minimum * 2**self.attempt)
        self.attempt += 1
        return (self.rng or random).uniform(self.minimum, max(self.minimum, cap))

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class LinkStats:
    connects: int = 0
    disconnects: int = 0
    published: int = 0
    acked: int = 0
    commands_rejected: int = 0


class MqttLink:
    """Owns one paho client and one thread."""

    def __init__(
        self,
        device_id: str,
        config: MqttConfig,
        outbox: Outbox,
        status_payload: Callable[[str], bytes],
        on_command: Callable[[Command], None] | None = None,
        *,
        on_ota_command: Callable[[OtaCommand], None] | None = None,
    ) -> None:
        url = urlparse(config.url)
        self.host, self.port = (
            url.hostname or "127.0.0.1",
            url.port or (8883 if url.scheme == "mqtts" else 1883),
        )
        self.tls = url.scheme == "mqtts"
        self.device_id = device_id
        self.config = config
        self.outbox = outbox
        self.status_payload = status_payload
        self.on_command = on_command
        self.on_ota_command = on_ota_command
        self.stats = LinkStats()
        self.backoff = Backoff(config.backoff_min_s, config.backoff_max_s)
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._inflight: dict[int, int] = {}  # mid -> seq
        self._last_submitted = -1
        self._status_requests: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.device_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
            reconnect_on_failure=False,
        )
        if self.config.username:
            password = self.config.password.get_secret_value() if self.config.password else None
            client.username_pw_set(self.config.username, password)
        if self.tls:
            client.tls_set()
        client.max_inflight_messages_set(self.config.max_inflight)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{self.device_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0, graceful: bool = True) -> None:
        """Stop the thread; graceful publishes `offline` first (a crash would leave it to the will)."""
        if graceful and self.connected.is_set():
            self._status_requests.put("offline")
            self._wake.set()
            deadline = time.monotonic() + 1.0
            while not self._status_requests.empty() and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)

    def notify(self) -> None:
        """Something new is in the outbox."""
        self._wake.set()

    def publish_status(self) -> None:
        self._status_requests.put("online")
        self._wake.set()

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            will = self.status_payload("offline")
            self._client.will_set(topic_for(self.device_id, Channel.STATUS), will, qos=1, retain=True)
            try:
                self._client.connect(self.host, self.port, keepalive=self.config.keepalive_s)
            except (OSError, mqtt.WebsocketConnectionError, ValueError) as err:
                delay = self.backoff.next_delay()
                log.info(
                    "%s: broker %s:%d unreachable (%s); retry in %.2f s",
                    self.device_id,
                    self.host,
                    self.port,
                    err,
                    delay,
                )
                self._stop.wait(delay)
                continue
            try:
                self._loop()
            except Exception:  # the top of a long-running loop: log, reconnect
                log.exception("%s: MQTT loop failed; reconnecting", self.device_id)
                self.connected.clear()
                self._client.disconnect()
            if self._stop.is_set():
                break
            delay = self.backoff.next_delay()
            log.info("%s: disconnected; reconnecting in %.2f s", self.device_id, delay)
            self._stop.wait(delay)
        try:
            self._client.disconnect()
            self._client.loop(timeout=0.05)
        except Exception:
            log.debug("disconnect on stop failed", exc_info=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            rc = self._client.loop(timeout=0.05)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                self.connected.clear()
                return
            if self.connected.is_set():
                self._flush_status()
                self._submit()

    def _flush_status(self) -> None:
        while not self._status_requests.empty():
            state = self._status_requests.get_nowait()
            self._client.publish(
                topic_for(self.device_id, Channel.STATUS), self.status_payload(state), qos=1, retain=True
            )
            self.stats.published += 1

    def _submit(self) -> None:
        room = self.config.max_inflight - len(self._inflight)
        if room <= 0 or not self._wake.is_set():
            return
        self._wake.clear()
        for msg in self.outbox.pending(after=self._last_submitted, limit=room):
            info = self._client.publish(msg.topic, msg.payload, qos=1)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                log.warning("%s: publish seq %d failed rc=%s", self.device_id, msg.seq, info.rc)
                break
            self._inflight[info.mid] = msg.seq
            self._last_submitted = msg.seq
            self.stats.published += 1
        if len(self._inflight) < self.config.max_inflight and self.outbox.pending(self._last_submitted, 1):
            self._wake.set()

    # -- paho callbacks (run in this thread) --------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, properties: object = None
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("%s: connection refused: %s", self.device_id, reason)
            return
        self.stats.connects += 1
        self.backoff.reset()
        topics = [(topic_for(self.device_id, Channel.CMD), 1)]
        if self.on_ota_command is not None:
            topics.append((topic_for(self.device_id, Channel.OTA_CMD), 1))
        client.subscribe(topics)
        self._status_requests.put("online")
        self.connected.set()
        self._wake.set()
        log.info("%s: connected to %s:%d", self.device_id, self.host, self.port)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: object, properties: object = None
    ) -> None:
        self.connected.clear()
        self.stats.disconnects += 1

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason: object = None,
        properties: object = None,
    ) -> None:
        seq = self._inflight.pop(mid, None)
        if seq is not None:
            self.outbox.ack(seq)
            self.stats.acked += 1
            self._wake.set()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            _, command = decode_topic(message.topic, bytes(message.payload))
        except ContractError as err:
            self.stats.commands_rejected += 1
            log.warning("%s: rejected command on %s: %s", self.device_id, message.topic, err)
            return
        if isinstance(command, Command) and self.on_command is not None:
            self.on_command(command)
        elif isinstance(command, OtaCommand) and self.on_ota_command is not None:
            self.on_ota_command(command)
