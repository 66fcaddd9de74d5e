"""The server's half of end-to-end delivery: after a batch commits, one `Ack` per device.

A device keeps each message in its outbox until an `Ack` on `ef/v1/{device_id}/ack` (QoS 1) covers
its seq; the broker's PUBACK only frees its in-flight window. The ingest acknowledges what is done
with once the batch's transaction has committed (`WriteResult.done`: stored, stored before, refused
as bad data), never what failed to be stored. An ack that is lost (the device is offline without a
session, the broker restarts) costs a resend, which (device_id, seq) dedup makes harmless.
"""

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

from edgefleet.contracts import MAX_ACK_RANGES, SCHEMA_VERSION, Channel, ack_ranges, topic_for
from edgefleet.server.ingest.store import WriteResult
from edgefleet.server.metrics import Metrics

log = logging.getLogger(__name__)
LOG_EVERY_S = 10.0
PublishMany = Callable[[list[tuple[str, bytes]]], None]
"""Hands (topic, payload) messages to the broker at QoS 1; raises when it cannot."""


def ack_messages(done: Mapping[str, Iterable[int]], ts: datetime | None = None) -> list[tuple[str, bytes]]:
    """(topic, payload) of one `Ack` per device (more when its seqs make over `MAX_ACK_RANGES` ranges).

    The JSON is written here rather than by `encode(Ack(...))`, a third of the cost at one ack per
    device and batch on the writer thread: the device id comes from a validated topic (nothing in it
    needs escaping) and the ranges are integers; a test holds it equal to `encode`'s result."""
    head = b'{"schema":%d,"ts":"%s","device_id":"' % (SCHEMA_VERSION, _timestamp(ts).encode())
    messages: list[tuple[str, bytes]] = []
    for device_id, seqs in done.items():
        ranges = ack_ranges(seqs)
        topic = topic_for(device_id, Channel.ACK)  # validates the id
        for start in range(0, len(ranges), MAX_ACK_RANGES):
            chunk = ",".join(f"[{lo},{hi}]" for lo, hi in ranges[start : start + MAX_ACK_RANGES])
            messages.append((topic, b'%s%s","ranges":[%s]}' % (head, device_id.encode(), chunk.encode())))
    return messages


def _timestamp(ts: datetime | None) -> str:
    """As pydantic writes a UTC datetime: `2026-12-01T08:00:00.123000Z` (or without the fraction)."""
    return (ts or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


class AckSender:
    """Publishes a committed batch's acks; never raises (it runs on the writer thread, after the commit:
    a failure here costs the devices a resend, not the batch)."""

    def __init__(self, publish: PublishMany, metrics: Metrics) -> None:
        self._publish = publish
        self._metrics = metrics
        self._last_error = -LOG_EVERY_S

    def __call__(self, result: WriteResult) -> None:
        if not result.done:
            return
        messages: list[tuple[str, bytes]] = []
        try:
            messages = ack_messages(result.done)
            self._publish(messages)
        except Exception as err:  # the broker is away or the ack cannot be built: devices resend
            self._metrics.ack_failures.inc(len(messages) or len(result.done))
            now = time.monotonic()
            if now - self._last_error >= LOG_EVERY_S:
                self._last_error = now
                log.warning("publishing acks to %d device(s) failed: %s", len(result.done), err)
            return
        self._metrics.acks.inc(len(messages))
        self._metrics.acked.inc(sum(len(set(seqs)) for seqs in result.done.values()))
