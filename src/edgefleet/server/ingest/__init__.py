"""MQTT ingest: subscribe to device topics, validate, store in idempotent batches, fan out."""

from edgefleet.server.ingest.store import IngestStore, Received, WriteResult
from edgefleet.server.ingest.worker import IngestWorker

__all__ = ["IngestStore", "IngestWorker", "Received", "WriteResult"]
