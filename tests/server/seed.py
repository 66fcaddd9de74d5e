"""Test data written through the real ingest store (no broker needed)."""

import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.contracts import Channel, Event, Status, Telemetry, encode, topic_for
from edgefleet.server.db import make_engine, make_sessionmaker, transaction, upgrade
from edgefleet.server.db.models import Device, Organization
from edgefleet.server.ingest import IngestStore, Received, WriteResult

_seq = itertools.count(1)


@contextmanager
def organization_db(url: str, device_ids: Sequence[str]) -> Iterator[sessionmaker[Session]]:
    """A migrated database with one organization owning `device_ids`; the organization (and by
    cascade its devices and everything they sent) is deleted afterwards."""
    engine = make_engine(url)
    upgrade(engine)
    factory = make_sessionmaker(engine)
    with transaction(factory) as session:
        org = Organization(name="A")
        session.add(org)
        session.flush()
        org_id = org.id
    for device_id in device_ids:
        add_device(factory, org_id, device_id)
    try:
        yield factory
    finally:
        with transaction(factory) as session:
            session.execute(delete(Organization).where(Organization.id == org_id))
        engine.dispose()


def add_device(sessions: sessionmaker[Session], org_id: int, device_id: str) -> None:
    with sessions() as session, session.begin():
        session.add(Device(id=device_id, org_id=org_id, name=device_id, kind="vibration", online=False))


def anomaly(device_id: str, seq: int | None = None, active: bool = True, ts: datetime | None = None) -> Event:
    return Event(
        device_id=device_id,
        seq=next(_seq) if seq is None else seq,
        ts=ts or datetime.now(UTC),
        kind="anomaly",
        active=active,
        score=0.9 if active else 0.1,
        threshold=0.5,
        features={"rms": 1.5},
        window=7,
    )


def telemetry(device_id: str, seq: int, anomaly_rate: float = 0.1, ts: datetime | None = None) -> Telemetry:
    return Telemetry(
        device_id=device_id,
        seq=seq,
        ts=ts or datetime.now(UTC) - timedelta(seconds=1),
        mode="running",
        uptime_s=100.0,
        interval_s=60.0,
        windows=100,
        anomaly_rate=anomaly_rate,
        score_max=0.8,
        inference_us=900.0,
    )


def status(device_id: str, state: Literal["online", "offline"] = "online", seq: int = 0) -> Status:
    return Status(
        device_id=device_id,
        seq=seq,
        ts=datetime.now(UTC),
        state=state,
        kind="vibration",
        firmware_version="1.0.0",
    )


def received(message: Event | Telemetry | Status) -> Received:
    channel = {Event: Channel.EVENT, Telemetry: Channel.TELEMETRY, Status: Channel.STATUS}[type(message)]
    return Received(topic_for(message.device_id, channel), encode(message))


def ingest(store: IngestStore, *messages: Event | Telemetry | Status) -> WriteResult:
    return store.write([received(m) for m in messages])


def ingest_on_time(store: IngestStore, *messages: Event | Telemetry | Status) -> WriteResult:
    """As `ingest`, received at each message's own `ts`: a device whose clock agrees with the server's
    (alarm timing follows the time of receipt)."""
    items = [received(m) for m in messages]
    return store.write([replace(item, received_at=m.ts) for item, m in zip(items, messages, strict=True)])
