"""The batch writer: a bounded queue of received messages and a thread that stores them in batches.

Whatever feeds it (the paho ingest client, or the embedded broker's in-process tap) gets a callback
with each batch and its result once it is committed (`on_committed`), to acknowledge it to the broker
and to the devices (`WriteResult.done`, published on `ack`).
"""

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from edgefleet.server.db.faults import Diagnosis, ErrorLog, diagnose
from edgefleet.server.ingest.store import IngestStore, Received, WriteResult
from edgefleet.server.metrics import Metrics

log = logging.getLogger(__name__)
RETRY_FIRST_S = 0.05
RETRY_MAX_S = 1.0
"""Backoff of a batch the database cannot write now: 0.05 s doubling up to this (with jitter), so the
ingest resumes within about a second of the database coming back, at one attempt a second meanwhile."""
STOP_GRACE_S = 5.0
"""On stop, how long a batch the database refuses is still retried before it is left unacknowledged
(the broker, or the device's outbox, sends it again)."""

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
        on_committed: Callable[[list[Received], WriteResult], None] | None = None,
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
        self._stopping = threading.Event()
        self._stop_at = 0.0
        self._errors = ErrorLog(log)

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, then end the thread. While the database cannot write, give up after
        `STOP_GRACE_S` and leave the rest unacknowledged."""
        if self._thread is not None:
            self._stop_at = time.monotonic()
            self._stopping.set()
            deadline = self._stop_at + timeout
            while self._thread.is_alive() and time.monotonic() < deadline:
                try:  # a full queue: the writer is stuck on an outage (and notices `_stopping`)
                    self._queue.put(None, timeout=0.1)
                    break
                except queue.Full:
                    continue
            self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
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
            if result is None:  # stopping while the database cannot write: nothing is acknowledged
                log.warning("ingest stopped with %d messages unwritten; the broker keeps them", len(batch))
                return
            self._metrics.batch_seconds.observe(time.perf_counter() - started)
            if self._on_committed is not None:
                self._on_committed(batch, result)
            try:
                self._account(result)
            except Exception:  # a metrics or hub failure must not stop ingest
                log.exception("accounting for an ingest batch failed")

    def _write(self, batch: list[Received]) -> WriteResult | None:
        """Store the batch (None: given up because the writer stops while the database cannot write).

        An error that is not the data's fault (`db.faults`: read-only, connection lost, disk full,
        locked, ...) keeps the batch and retries it with backoff, unacknowledged, for as long as it
        lasts. An error the data causes halves the batch until the message that cannot be stored is
        alone, and rejects it (`store_error`) so it cannot stall everything behind it."""
        attempt = 0
        failing_since = 0.0
        while True:
            try:
                result = self._store.write(batch)
            except Exception as err:
                diagnosis = diagnose(err)
                if not diagnosis.retry:
                    return self._unstorable(batch, diagnosis)
                if attempt == 0:
                    failing_since = time.monotonic()
                    self._metrics.write_failing.set(1)
                attempt += 1
                self._metrics.write_retries.labels(diagnosis.kind).inc()
                delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
                self._errors(
                    diagnosis.kind,
                    "the database cannot write now (%s: %s); %d messages kept unacknowledged, retrying",
                    diagnosis.kind,
                    diagnosis.detail,
                    len(batch),
                )
                if not self._stopping.is_set():
                    self._stopping.wait(delay)  # a stop cuts the wait short
                elif time.monotonic() - self._stop_at > STOP_GRACE_S:
                    return None
                else:
                    time.sleep(delay)
                continue
            if attempt:
                self._metrics.write_failing.set(0)
                unreported = self._errors.reset()
                log.warning(
                    "the database writes again after %.1f s and %d retries (%d not reported); ingest resumes",
                    time.monotonic() - failing_since,
                    attempt,
                    unreported,
                )
            return result

    def _unstorable(self, batch: list[Received], diagnosis: Diagnosis) -> WriteResult | None:
        if len(batch) == 1:
            self._errors(
                f"data:{diagnosis.kind}",
                "a message on %s cannot be stored (%s: %s); rejecting it as store_error",
                batch[0].topic,
                diagnosis.kind,
                diagnosis.detail,
            )
            return WriteResult(rejected={"store_error": 1})
        middle = len(batch) // 2
        first = self._write(batch[:middle])
        second = self._write(batch[middle:]) if first is not None else None
        return _merge(first, second) if first is not None and second is not None else None

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
        for flag, count in result.device_time.items():
            metrics.device_time.labels(flag).inc(count)
        observe = metrics.latency.observe
        for latency in result.latencies_s:
            observe(latency)
        if self._publish is not None and result.notifications:
            self._publish(result.notifications)


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for key, count in more.items():
        into[key] = into.get(key, 0) + count


def _merge(a: WriteResult, b: WriteResult) -> WriteResult:
    pairs = ((a.accepted, b.accepted), (a.stored, b.stored), (a.rejected, b.rejected))
    for mine, theirs in (*pairs, (a.device_time, b.device_time)):
        _add(mine, theirs)
    a.duplicates += b.duplicates
    a.latencies_s.extend(b.latencies_s)
    a.notifications.extend(b.notifications)
    for device_id, seqs in b.done.items():
        a.done.setdefault(device_id, []).extend(seqs)
    return a
