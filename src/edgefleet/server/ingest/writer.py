"""The batch writer: a bounded queue of received messages and a thread that stores them in batches.

Whatever feeds it (the paho ingest client, or the embedded broker's in-process tap) gets a callback
with each batch once it is committed (`on_committed`), to acknowledge it to the broker.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from edgefleet.server.ingest.store import IngestStore, Received, WriteResult
from edgefleet.server.metrics import Metrics

log = logging.getLogger(__name__)
RETRY_S = 1.0
RETRYABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)
"""The database is away (down, restarting, locked, out of connections): try the same batch again."""

Notify = Callable[[list[tuple[int, str, dict[str, Any]]]], None]
"""Publishes a batch's (org_id, type, data) notifications on the real-time hub (`Hub.publish_many`)."""


class BatchWriter:
    def __init__(
        self,
        store: IngestStore,
        metrics: Metrics,
        *,
        publish: Notify | None = None,
        batch_size: int = 500,
        flush_ms: float = 2.0,
        queue_max: int = 20_000,
        on_committed: Callable[[list[Received]], None] | None = None,
        name: str = "ingest-writer",
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._publish = publish
        self._batch_size = batch_size
        self._flush_s = flush_ms / 1000
        self._queue: queue.Queue[Received | None] = queue.Queue(queue_max)
        self._on_committed = on_committed
        self._name = name
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, then end the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=timeout)
            self._thread = None

    def put(self, item: Received) -> None:
        """Blocks while the queue is full: backpressure to whoever delivers."""
        self._queue.put(item)

    def offer(self, item: Received) -> bool:
        """Queue without blocking; False when full."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            return False
        return True

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def _next_batch(self) -> tuple[list[Received], bool]:
        first = self._queue.get()
        if first is None:
            return [], True
        # Take what is queued; linger only briefly. The broker sends at most its in-flight window
        # (Mosquitto `max_inflight_messages`) before we acknowledge, so waiting long for a full batch
        # would only stall the stream.
        batch = [first]
        get_nowait = self._queue.get_nowait
        deadline = time.monotonic() + self._flush_s
        while len(batch) < self._batch_size:
            try:
                item = get_nowait()
            except queue.Empty:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    item = self._queue.get(timeout=timeout)
                except queue.Empty:
                    break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._next_batch()
            if not batch:
                continue
            self._metrics.queue_depth.set(self._queue.qsize())
            started = time.perf_counter()
            result = self._write(batch)
            self._metrics.batch_seconds.observe(time.perf_counter() - started)
            if self._on_committed is not None:
                self._on_committed(batch)
            try:
                self._account(result)
            except Exception:  # a metrics or hub failure must not stop ingest
                log.exception("accounting for an ingest batch failed")

    def _write(self, batch: list[Received]) -> WriteResult:
        """Store the batch. A database outage: keep it and retry, never acknowledge what is unwritten.
        Any other failure is the data's: halve the batch until the message that cannot be stored is
        alone, and reject it (`store_error`) so it cannot stall everything behind it."""
        while True:
            try:
                return self._store.write(batch)
            except RETRYABLE:
                log.exception("writing an ingest batch of %d failed; retrying in %.0f s", len(batch), RETRY_S)
                time.sleep(RETRY_S)
            except Exception:
                if len(batch) == 1:
                    log.exception("a message on %s cannot be stored; rejecting it", batch[0].topic)
                    return WriteResult(rejected={"store_error": 1})
                middle = len(batch) // 2
                return _merge(self._write(batch[:middle]), self._write(batch[middle:]))

    def _account(self, result: WriteResult) -> None:
        metrics = self._metrics
        for channel, count in result.accepted.items():
            metrics.ingested.labels(channel).inc(count)
        for channel, count in result.stored.items():
            metrics.stored.labels(channel).inc(count)
        for reason, count in result.rejected.items():
            metrics.rejected.labels(reason).inc(count)
        if result.duplicates:
            metrics.duplicates.inc(result.duplicates)
        observe = metrics.latency.observe
        for latency in result.latencies_s:
            observe(latency)
        if self._publish is not None and result.notifications:
            self._publish(result.notifications)


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for key, count in more.items():
        into[key] = into.get(key, 0) + count


def _merge(a: WriteResult, b: WriteResult) -> WriteResult:
    for mine, theirs in ((a.accepted, b.accepted), (a.stored, b.stored), (a.rejected, b.rejected)):
        _add(mine, theirs)
    a.duplicates += b.duplicates
    a.latencies_s.extend(b.latencies_s)
    a.notifications.extend(b.notifications)
    return a
