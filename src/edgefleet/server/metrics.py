"""Prometheus metrics, one registry per app so several apps can live in one process (tests)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ingested = Counter(
            "edgefleet_ingest_messages_total",
            "Valid device messages taken from the broker, by channel",
            ["channel"],
            registry=self.registry,
        )
        self.stored = Counter(
            "edgefleet_ingest_stored_total",
            "Rows newly stored (duplicates excluded), by channel",
            ["channel"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "edgefleet_ingest_duplicates_total",
            "Messages already stored (same device_id and seq)",
            registry=self.registry,
        )
        self.rejected = Counter(
            "edgefleet_ingest_rejected_total",
            "Device messages rejected, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.acks = Counter(
            "edgefleet_ingest_acks_total",
            "Ack messages published to devices on `ack` after their batch committed",
            registry=self.registry,
        )
        self.acked = Counter(
            "edgefleet_ingest_acked_total",
            "Device messages acknowledged on `ack`: stored, duplicates, refused bad data (once per batch)",
            registry=self.registry,
        )
        self.ack_failures = Counter(
            "edgefleet_ingest_ack_failures_total",
            "Ack messages that could not be handed to the broker (the devices resend)",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "edgefleet_ingest_queue_depth",
            "Messages received but not yet written",
            registry=self.registry,
        )
        self.latency = Histogram(
            "edgefleet_ingest_latency_seconds",
            "Device timestamp to stored, seconds",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "edgefleet_ingest_batch_seconds",
            "Time to write one batch",
            registry=self.registry,
        )
        self.write_retries = Counter(
            "edgefleet_ingest_write_retries_total",
            "Batch writes retried because the database could not write (read-only, down, full, ...), by kind",
            ["kind"],
            registry=self.registry,
        )
        self.write_failing = Gauge(
            "edgefleet_ingest_write_failing",
            "1 while the batch writer retries a batch the database cannot write now",
            registry=self.registry,
        )
        self.device_time = Counter(
            "edgefleet_ingest_device_time_total",
            "Stored events and telemetry whose device time is flagged: unsynced (the device says so), "
            "future (> 5 min ahead of receipt), past (> 1 day before receipt)",
            ["flag"],
            registry=self.registry,
        )
        self.stream_clients = Gauge(
            "edgefleet_stream_clients",
            "Connected WebSocket stream clients",
            registry=self.registry,
        )
