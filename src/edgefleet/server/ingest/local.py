"""Ingest from the embedded broker in this process: its tap feeds the batch writer directly.

An MQTT client here would make every message cross the loopback twice and be encoded, parsed and
acknowledged twice, all under this process's GIL. The tap has the same guarantee (the embedded broker's
sessions live in this process's memory either way) and applies backpressure: while the writer's queue
is full the broker stops taking the next message of that device's connection.

amqtt acknowledges a device's message (PUBACK) on receipt, before it is stored; what tells the device
its message is safe is the `Ack` the broker publishes on `ef/v1/{device_id}/ack` once the batch has
committed (`acks.py`). A server that dies in between loses nothing a device still holds in its outbox.
"""

import asyncio
import logging

from edgefleet.contracts import Channel, Command, Message, encode, topic_for
from edgefleet.server.broker import EmbeddedBroker
from edgefleet.server.ingest.acks import AckSender
from edgefleet.server.ingest.store import IngestStore, Received, WriteResult
from edgefleet.server.ingest.writer import BatchWriter, Notify
from edgefleet.server.metrics import Metrics

log = logging.getLogger(__name__)
FULL_RETRY_S = 0.005


class LocalIngest:
    def __init__(
        self,
        store: IngestStore,
        broker: EmbeddedBroker,
        *,
        metrics: Metrics,
        publish: Notify | None = None,
        batch_size: int = 500,
        flush_ms: float = 2.0,
        queue_max: int = 20_000,
    ) -> None:
        self._broker = broker
        self._acks = AckSender(broker.publish_many, metrics)
        self._writer = BatchWriter(
            store,
            metrics,
            publish=publish,
            batch_size=batch_size,
            flush_ms=flush_ms,
            queue_max=queue_max,
            on_committed=self._committed,
        )

    def start(self) -> None:
        self._writer.start()
        self._broker.set_tap(self._tap)

    def stop(self) -> None:
        """Stop taking messages, then write what was taken."""
        self._broker.set_tap(None)
        self._writer.stop()

    async def _tap(self, topic: str, payload: bytes) -> None:
        item = Received(topic, payload)
        while not self._writer.offer(item):
            await asyncio.sleep(FULL_RETRY_S)

    def _committed(self, _batch: list[Received], result: WriteResult) -> None:
        self._acks(result)  # the broker queues it without waiting: the writer goes on

    def publish_command(self, command: Command) -> None:
        self.publish_message(topic_for(command.device_id, Channel.CMD), command)

    def publish_message(self, topic: str, message: Message) -> None:
        self._broker.publish(topic, encode(message))

    @property
    def connected(self) -> bool:
        return True
