"""The MQTT link: drains the outbox with QoS 1, reconnects with backoff and jitter, receives commands
and the server's end-to-end acknowledgements.

One thread per device runs paho's network loop and the publishing, so paho is only touched from
that thread. Delivery (`MqttConfig.delivery`):

- `end_to_end` (default): a message leaves the outbox only when an `Ack` from the server (on the
  device's `ack` topic, after the server's database commit) covers its seq. The broker's PUBACK
  only frees a place in the in-flight window (`max_inflight`). A message published and not
  acknowledged within the resend timeout is published again; the timeout starts at
  `ack_timeout_s` and grows per resend round (doubling, full jitter, capped at
  `ack_timeout_max_s`) while no acknowledgement arrives, and falls back to `ack_timeout_s` as soon
  as one does. After a reconnect every unacknowledged message is published again, oldest first
  (a fresh paho client per connection: paho re-sends nothing by itself). The server stores
  (device_id, seq) once, so a resend is harmless.
- `broker`: a message leaves the outbox on its PUBACK (what a broker acknowledges and then loses,
  or delivers to nobody, is lost).

The session is persistent (acknowledgements and commands sent while the device is away are
queued by the broker), and the device subscribes to `cmd`, `ack` (and `ota/cmd`) on every connect,
since a broker may have lost the session. The retained `status` says online (firmware, model); the
last will says offline. Nothing the outbox or a callback raises stops the thread: it logs,
reconnects and carries on.
"""

import logging
import queue
import random
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet.contracts import (
    Ack,
    Channel,
    Command,
    ContractError,
    OtaCommand,
    decode_topic,
    topic_for,
)
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


class AckTracker:
    """Which published seqs await the server's acknowledgement, since when, and when to resend.

    A resend round takes every tracked seq published `timeout` ago or longer; the next round comes
    `timeout` later at the earliest, so each unacknowledged message is published at most once per
    timeout. The timeout is `timeout_s` until a round happens; round k then waits between
    c/2 and c with c = min(max_timeout_s, timeout_s * 2**k) (doubling, jittered so devices that lost
    the server together do not resend together, never below `timeout_s`), and any acknowledgement
    that confirms something (`progress`) sets it back to `timeout_s`."""

    def __init__(self, timeout_s: float, max_timeout_s: float, rng: random.Random | None = None) -> None:
        self.first = timeout_s
        self.maximum = max(timeout_s, max_timeout_s)
        self.rng = rng
        self.rounds = 0  # rounds since the last progress
        self.timeout = timeout_s
        self._next_round = -float("inf")
        self._sent: OrderedDict[int, float] = OrderedDict()  # seq -> last publish, oldest first

    def __len__(self) -> int:
        return len(self._sent)

    def __contains__(self, seq: int) -> bool:
        return seq in self._sent

    def published(self, seq: int, now: float) -> None:
        self._sent.pop(seq, None)
        self._sent[seq] = now

    def acknowledged(self, ranges: Sequence[tuple[int, int]]) -> int:
        """Stop tracking the seqs in `ranges`; returns how many were tracked. Progress resets the timeout."""
        confirmed = 0
        for lo, hi in ranges:
            if hi - lo + 1 <= len(self._sent):
                for seq in range(lo, hi + 1):
                    confirmed += self._sent.pop(seq, None) is not None
            else:
                for seq in [s for s in self._sent if lo <= s <= hi]:
                    del self._sent[seq]
                    confirmed += 1
        if confirmed:
            self.progress()
        return confirmed

    def progress(self) -> None:
        """The server acknowledged something: it is there; back to the first timeout."""
        self.rounds = 0
        self.timeout = self.first
        self._next_round = -float("inf")

    def due(self, now: float) -> list[int]:
        """The seqs to publish again now (they leave the tracker until published again)."""
        if not self._sent or now < self._next_round:
            return []
        if now - next(iter(self._sent.values())) < self.timeout:
            return []
        out: list[int] = []
        while self._sent:
            seq, sent = next(iter(self._sent.items()))
            if now - sent < self.timeout:
                break
            self._sent.popitem(last=False)
            out.append(seq)
        self.rounds += 1
        cap = min(self.maximum, self.first * 2**self.rounds)
        self.timeout = (self.rng or random).uniform(max(self.first, cap / 2), cap)
        self._next_round = now + self.timeout
        return out

    def reset(self) -> None:
        """A new connection: everything unacknowledged is published again from scratch (the
        timeout stays: a reconnect says nothing about the server)."""
        self._sent.clear()


@dataclass
class LinkStats:
    connects: int = 0
    disconnects: int = 0
    published: int = 0  # first publication of an outbox message by this process, plus statuses
    resent: int = 0  # publications again: after the resend timeout or a reconnect
    resend_rounds: int = 0  # resend timeouts that fired
    broker_acked: int = 0  # PUBACKs of outbox messages
    acked: int = 0  # messages confirmed and deleted from the outbox (by an Ack; by PUBACK with `broker`)
    acks: int = 0  # valid Ack messages received
    acks_rejected: int = 0  # Ack messages malformed or for another device: ignored
    acks_unknown: int = 0  # acknowledged seqs never published by this process: ignored
    acks_duplicate: int = 0  # acknowledged seqs no longer in the outbox (already acknowledged, statuses)
    commands_rejected: int = 0
    errors: int = 0  # exceptions caught at the top of the link's thread


class MqttLink:
    """Owns one paho client per connection and one thread."""

    def __init__(
        self,
        device_id: str,
        config: MqttConfig,
        outbox: Outbox,
        status_payload: Callable[[str], bytes],
        on_command: Callable[[Command], None] | None = None,
        *,
        on_ota_command: Callable[[OtaCommand], None] | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
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
        self.end_to_end = config.delivery == "end_to_end"
        self.clock = clock  # monotonic seconds, for the resend timeouts
        self.stats = LinkStats()
        self.backoff = Backoff(config.backoff_min_s, config.backoff_max_s, rng=rng)
        self.tracker = AckTracker(config.ack_timeout_s, config.ack_timeout_max_s, rng=rng)
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._ack_topic = topic_for(device_id, Channel.ACK)
        self._inflight: dict[int, int] = {}  # mid -> seq, until the broker's PUBACK
        self._resend: deque[int] = deque()  # seqs due for publishing again
        self._last_submitted = -1  # the cursor over new messages in this connection
        self._high_water = -1  # the highest seq this process published
        self._status_requests: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._last_error_log = -float("inf")
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.device_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
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

    @property
    def unacknowledged(self) -> int:
        """Messages published in this connection and not yet acknowledged end to end."""
        return len(self.tracker) + len(self._resend)

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._session()
            except Exception:  # the top of a long-running loop: log (rate-limited), reconnect
                self.stats.errors += 1
                now = time.monotonic()
                if now - self._last_error_log >= 30.0:
                    self._last_error_log = now
                    log.exception("%s: MQTT link failed; reconnecting", self.device_id)
                try:
                    self._client.disconnect()
                    self._client.loop(timeout=0.05)
                except Exception:
                    log.debug("disconnect after a failure failed", exc_info=True)
            self.connected.clear()
            self._forget_connection()
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

    def _session(self) -> None:
        """One connection: connect, then run until it drops or the link stops."""
        self._client = client = self._make_client()
        will = self.status_payload("offline")
        client.will_set(topic_for(self.device_id, Channel.STATUS), will, qos=1, retain=True)
        try:
            client.connect(self.host, self.port, keepalive=self.config.keepalive_s)
        except (OSError, mqtt.WebsocketConnectionError, ValueError) as err:
            log.info("%s: broker %s:%d unreachable (%s)", self.device_id, self.host, self.port, err)
            return
        while not self._stop.is_set():
            rc = client.loop(timeout=0.05)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                return
            if self.connected.is_set():
                self._flush_status()
                if self.end_to_end:
                    self._check_resend()
                self._submit()

    def _forget_connection(self) -> None:
        """Connection gone: what it had in flight or awaiting acknowledgement is published again."""
        self._inflight.clear()
        self._resend.clear()
        self.tracker.reset()
        self._last_submitted = -1
        self._wake.set()

    def _flush_status(self) -> None:
        while not self._status_requests.empty():
            state = self._status_requests.get_nowait()
            self._client.publish(
                topic_for(self.device_id, Channel.STATUS), self.status_payload(state), qos=1, retain=True
            )
            self.stats.published += 1

    def _check_resend(self) -> None:
        due = self.tracker.due(self.clock())
        if due:
            self.stats.resend_rounds += 1
            self._resend.extend(due)
            self._wake.set()
            log.info(
                "%s: %d messages not acknowledged by the server; publishing them again "
                "(next resend timeout %.1f s)",
                self.device_id,
                len(due),
                self.tracker.timeout,
            )

    def _publish(self, seq: int, topic: str, payload: bytes) -> bool:
        info = self._client.publish(topic, payload, qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.warning("%s: publish seq %d failed rc=%s", self.device_id, seq, info.rc)
            return False
        self._inflight[info.mid] = seq
        if self.end_to_end:
            self.tracker.published(seq, self.clock())
        if seq <= self._high_water:
            self.stats.resent += 1
        else:
            self.stats.published += 1
            self._high_water = seq
        return True

    def _submit(self) -> None:
        room = self.config.max_inflight - len(self._inflight)
        if room <= 0 or not self._wake.is_set():
            return
        self._wake.clear()
        while self._resend and room > 0:  # due resends first: they are the oldest
            batch = [self._resend.popleft() for _ in range(min(room, len(self._resend)))]
            messages = self.outbox.get(batch)  # those acknowledged or dropped meanwhile are gone
            if messages is None:  # the outbox cannot be read now: try again on the next pass
                self._resend.extendleft(reversed(batch))
                self._wake.set()
                return
            for i, msg in enumerate(messages):
                if not self._publish(msg.seq, msg.topic, msg.payload):
                    self._resend.extendleft(reversed([m.seq for m in messages[i:]]))
                    self._wake.set()
                    return
                room -= 1
        if room > 0:
            for msg in self.outbox.pending(after=self._last_submitted, limit=room):
                if not self._publish(msg.seq, msg.topic, msg.payload):
                    break
                self._last_submitted = msg.seq
                room -= 1
        if self._resend or room <= 0:  # more may be waiting: look again when the window has room
            self._wake.set()

    def _handle_ack(self, ack: Ack) -> None:
        """Delete what the server acknowledged (one transaction); ignore what this process never sent."""
        self.stats.acks += 1
        ranges: list[tuple[int, int]] = []
        for lo, hi in ack.ranges:
            if hi > self._high_water:
                self.stats.acks_unknown += hi - max(lo, self._high_water + 1) + 1
            if lo <= self._high_water:
                ranges.append((lo, min(hi, self._high_water)))
        if not ranges:
            return
        deleted = self.outbox.ack_ranges(ranges)
        if not self.tracker.acknowledged(ranges) and deleted:
            self.tracker.progress()
        self.stats.acked += deleted
        self.stats.acks_duplicate += max(0, sum(hi - lo + 1 for lo, hi in ranges) - deleted)
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
        if self.end_to_end:
            topics.append((self._ack_topic, 1))
        if self.on_ota_command is not None:
            topics.append((topic_for(self.device_id, Channel.OTA_CMD), 1))
        client.subscribe(topics)
        self._status_requests.put("online")
        self.connected.set()
        self._wake.set()
        log.info(
            "%s: connected to %s:%d (session present: %s)",
            self.device_id,
            self.host,
            self.port,
            getattr(flags, "session_present", None),
        )

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
        if seq is None:
            return
        self.stats.broker_acked += 1
        if not self.end_to_end:
            self.stats.acked += self.outbox.ack(seq)
        self._wake.set()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        is_ack = message.topic == self._ack_topic
        try:
            address, decoded = decode_topic(message.topic, bytes(message.payload))
        except ContractError as err:
            if is_ack:
                self.stats.acks_rejected += 1
                log.warning("%s: rejected ack: %s", self.device_id, err)
            else:
                self.stats.commands_rejected += 1
                log.warning("%s: rejected command on %s: %s", self.device_id, message.topic, err)
            return
        if isinstance(decoded, Ack):
            if address.device_id != self.device_id or not is_ack:
                self.stats.acks_rejected += 1
                log.warning("%s: ignored an ack for %s", self.device_id, address.device_id)
            elif self.end_to_end:
                self._handle_ack(decoded)
        elif isinstance(decoded, Command) and self.on_command is not None:
            self.on_command(decoded)
        elif isinstance(decoded, OtaCommand) and self.on_ota_command is not None:
            self.on_ota_command(decoded)
