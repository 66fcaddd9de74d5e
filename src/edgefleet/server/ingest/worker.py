"""The ingest worker: a paho MQTT 5 client feeding a batch writer thread (`writer.BatchWriter`).

Messages are acknowledged to the broker (PUBACK, manual ack) only after their batch is committed,
and the session is persistent (clean_start False, long session expiry, QoS 1): a server that stops
or crashes gets every unacknowledged message again when it reconnects. After the commit the same
client publishes one `Ack` per device on `ef/v1/{device_id}/ack` (`acks.py`): the end-to-end
acknowledgement that lets a device free its outbox. The ingest never subscribes to `ack`.
"""

import logging
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgefleet.contracts import (
    DEVICE_CHANNELS,
    Channel,
    Command,
    Message,
    fleet_subscription,
    shared_subscription,
    topic_for,
)
from edgefleet.server.errors import BrokerError
from edgefleet.server.ingest.acks import AckSender
from edgefleet.server.ingest.mqtt import BrokerAddress, make_client, publish_qos1
from edgefleet.server.ingest.store import IngestStore, Received, WriteResult
from edgefleet.server.ingest.writer import BatchWriter, Notify
from edgefleet.server.metrics import Metrics

log = logging.getLogger(__name__)
SESSION_EXPIRY_S = 7 * 24 * 3600
RECEIVE_MAXIMUM = 10_000
LOG_EVERY_S = 10.0


class RateLimitedLog:
    """Logs the first reject of each reason, then at most one summary per reason every `every_s`."""

    def __init__(self, every_s: float = LOG_EVERY_S) -> None:
        self._every = every_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(self, reason: str, topic: str, detail: str) -> None:
        now = time.monotonic()
        if now - self._last.get(reason, -self._every) >= self._every:
            more = self._suppressed.pop(reason, 0)
            suffix = f" ({more} more since the last report)" if more else ""
            log.warning("rejected message on %s (%s): %s%s", topic, reason, detail[:300], suffix)
            self._last[reason] = now
        else:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1


class IngestWorker:
    def __init__(
        self,
        store: IngestStore,
        address: BrokerAddress,
        *,
        client_id: str,
        username: str | None,
        password: str | None,
        group: str | None,
        metrics: Metrics,
        publish: Notify | None = None,
        batch_size: int = 500,
        flush_ms: float = 2.0,
        queue_max: int = 20_000,
        ca_file: str | None = None,
        mqtt5: bool = True,
        ack_after_commit: bool = True,
    ) -> None:
        """`ack_after_commit`: PUBACK only once stored, so the broker keeps (and resends after a
        reconnect) what is not in the database yet. Off: paho acknowledges on receipt. Either way the
        devices get their `ack` after the commit."""
        self._address = address
        self._client_id = client_id
        self._group = group
        self._manual_ack = ack_after_commit
        self._metrics = metrics
        self._acks = AckSender(self._publish_acks, metrics)
        self._ack_mids: set[int] = set()  # acks the broker has not answered yet
        self._refused_at = -LOG_EVERY_S
        self._writer = BatchWriter(
            store,
            metrics,
            publish=publish,
            batch_size=batch_size,
            flush_ms=flush_ms,
            queue_max=queue_max,
            on_committed=self._committed,
            name=f"ingest-writer-{client_id}",
        )
        self._client = make_client(
            client_id,
            address,
            username=username,
            password=password,
            ca_file=ca_file,
            manual_ack=ack_after_commit,
            mqtt5=mqtt5,
        )
        self._client.reconnect_delay_set(min_delay=1, max_delay=5)
        self._client.on_connect = self._on_connect
        self._client.on_raw_publish = self._on_publish
        self._client.on_publish = self._on_published
        self._client.on_disconnect = self._on_disconnect
        self._connected = threading.Event()
        self._mqtt5 = mqtt5

    # --- lifecycle -----------------------------------------------------------------------------
    connect_error: str | None = None
    """Why the first connection attempt at start failed (None once connected at start)."""

    def start(self, timeout: float = 10.0) -> bool:
        """Start writing and connect (persistent session), waiting up to `timeout` for the broker.

        A broker that cannot be reached (or refuses us) is not an error: paho keeps trying in the
        background (1 s doubling to 5 s) and subscribes once it is there; `connected` says whether it
        is. Returns whether it connected within `timeout`."""
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        self._writer.start()
        self._connect_failures = 0
        self._client.on_connect_fail = self._on_connect_fail
        host, port = self._address.host, self._address.port
        try:  # a first attempt in this thread, to say why it fails (paho's retries do not)
            if self._mqtt5:
                self._client.connect(host, port, clean_start=False, properties=properties)
            else:
                self._client.connect(host, port)
        except OSError as err:  # refused, unreachable, TLS: paho's loop retries from here on
            self.connect_error = f"{type(err).__name__}: {err}"
            if self._mqtt5:
                self._client.connect_async(host, port, clean_start=False, properties=properties)
            else:
                self._client.connect_async(host, port)
        self._client.loop_start()
        if self._connected.wait(timeout):
            self.connect_error = None
            return True
        log.warning(
            "the MQTT broker at %s is not reachable yet (%s); the server runs degraded and the ingest "
            "keeps trying to connect in the background",
            self._address.url,
            self.connect_error or "no CONNACK",
        )
        return False

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        self._connect_failures += 1
        if self._connect_failures in (1, 10) or self._connect_failures % 60 == 0:  # compact: not each retry
            log.warning(
                "cannot reach the MQTT broker at %s (%d failed attempts since start); retrying",
                self._address.url,
                self._connect_failures,
            )

    def stop(self) -> None:
        """Write what was received, acknowledge it, and disconnect."""
        self._writer.stop()
        self._client.disconnect()
        self._client.loop_stop()

    def publish_command(self, command: Command) -> None:
        self.publish_message(topic_for(command.device_id, Channel.CMD), command)

    def publish_message(self, topic: str, message: Message) -> None:
        publish_qos1(self._client, topic, message)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # --- paho callbacks (network thread) -------------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _u: Any, flags: Any, reason: ReasonCode, _p: Properties | None
    ) -> None:
        if reason.is_failure:
            log.error("MQTT broker refused the ingest client: %s", reason)
            return
        if not flags.session_present:
            log.warning(
                "the MQTT broker at %s has no session for the ingest client %s (session present: False): "
                "its subscriptions and the messages queued for it are gone (a first start, or a broker "
                "restart without persistence); devices resend what the server has not acknowledged",
                self._address.url,
                self._client_id,
            )
        filters = [fleet_subscription(channel) for channel in DEVICE_CHANNELS]
        if self._group:
            filters = [shared_subscription(self._group, f) for f in filters]
        client.subscribe([(f, 1) for f in filters])
        log.info(
            "ingest connected to %s (session present: %s), subscribed to %s",
            self._address.url,
            flags.session_present,
            ", ".join(filters),
        )
        self._connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._connected.clear()
        if reason.is_failure:
            log.warning("ingest lost the MQTT broker (%s); paho reconnects", reason)

    def _on_publish(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        # Blocks when the writer falls behind: backpressure to the broker, which holds the rest.
        self._writer.put(Received.validated(topic, payload, mid, qos))

    def _on_published(
        self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Properties | None
    ) -> None:
        """The broker's answer to what the server published (MQTT 5 reason code)."""
        ack = mid in self._ack_mids
        self._ack_mids.discard(mid)
        if not reason.is_failure:
            return
        if ack:
            self._metrics.ack_failures.inc()
        now = time.monotonic()
        if now - self._refused_at >= LOG_EVERY_S:  # at most one line per 10 s
            self._refused_at = now
            log.warning(
                "the MQTT broker refused %s the server published (%s): may the ingest user write "
                "`cmd`, `ota/cmd` and `ack` (see its ACL)?",
                "an ack" if ack else "a message",
                reason,
            )

    # --- writer thread -------------------------------------------------------------------------
    def _committed(self, batch: list[Received], result: WriteResult) -> None:
        """The batch is in the database: PUBACK it to the broker, then tell the devices (`ack`)."""
        if self._manual_ack:
            self._client.ack_many(item.mid for item in batch if item.qos == 1)
            for item in batch:
                if item.qos == 2:  # devices publish at QoS 1; a QoS 2 message gets its PUBCOMP
                    self._client.ack(item.mid, item.qos)
        self._acks(result)

    def _publish_acks(self, messages: list[tuple[str, bytes]]) -> None:
        """QoS 1; while disconnected paho keeps them and sends them after the reconnect."""
        for topic, payload in messages:
            info = self._client.publish(topic, payload, qos=1)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                raise BrokerError(f"publishing to {topic} failed: {mqtt.error_string(info.rc)}")
            self._ack_mids.add(info.mid)
