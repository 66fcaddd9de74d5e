"""Notification tests: an organization with an admin and a device on SQLite or PostgreSQL, a real
SMTP server (the demo's local inbox, aiosmtpd) and a worker whose clock the test may set."""

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.server.db import transaction
from edgefleet.server.db.models import Alarm, Device, NotifyDelivery, User
from edgefleet.server.ingest import IngestStore
from edgefleet.server.notify import service
from edgefleet.server.notify.local_inbox import LocalInbox
from edgefleet.server.notify.schemas import ChannelCreate, RuleCreate
from edgefleet.server.notify.worker import NotifyWorker
from edgefleet.server.services import accounts
from edgefleet.server.services import alarms as alarm_service
from edgefleet.server.services.principal import Principal
from edgefleet.server.settings import ServerSettings
from tests.server import seed
from tests.server.conftest import PASSWORD, make_settings

_n = itertools.count()


@dataclass
class World:
    url: str
    sessions: sessionmaker[Session]
    settings: ServerSettings
    org_id: int
    user_id: int
    device_id: str

    def principal(self, session: Session) -> Principal:
        user = session.get(User, self.user_id)
        assert user is not None
        return Principal(user, via="session")

    def channel(self, kind: str, config: dict[str, Any], name: str = "channel") -> int:
        with transaction(self.sessions) as session:
            body = ChannelCreate(name=name, kind=kind, config=config)
            created = service.create_channel(session, self.principal(session), body, self.settings.secret_key)
            return created.id

    def rule(self, **fields: Any) -> int:
        with transaction(self.sessions) as session:
            rule = service.create_rule(session, self.principal(session), RuleCreate(name="rule", **fields))
            return rule.id

    def open_alarm(self, severity: str = "warning", device_id: str | None = None) -> int:
        device = device_id or self.device_id
        event = seed.anomaly(device).model_copy(update={"severity": severity})
        seed.ingest(IngestStore(self.sessions, alarm_cooldown_s=0), event)
        with self.sessions() as session:
            alarm_id = session.scalar(
                select(Alarm.id).where(Alarm.device_id == device, Alarm.cleared_at.is_(None))
            )
        assert alarm_id is not None
        return int(alarm_id)

    def add_device(self) -> str:
        device_id = f"nf-{uuid.uuid4().hex[:10]}"
        seed.add_device(self.sessions, self.org_id, device_id)
        return device_id

    def clear_alarm(self, alarm_id: int) -> None:
        with transaction(self.sessions) as session:
            alarm_service.clear(session, self.principal(session), alarm_id, "fixed")

    def acknowledge(self, alarm_id: int) -> None:
        with transaction(self.sessions) as session:
            alarm_service.acknowledge(session, self.principal(session), alarm_id)

    def worker(self, **overrides: Any) -> NotifyWorker:
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        return NotifyWorker(self.sessions, settings)

    def deliveries(self) -> list[NotifyDelivery]:
        with self.sessions() as session:
            return list(session.scalars(select(NotifyDelivery).order_by(NotifyDelivery.id)))


def world_settings(tmp_path: Path, url: str, **overrides: Any) -> ServerSettings:
    values: dict[str, Any] = {
        "db_url": url,
        "alarm_notify_cooldown_s": 0,
        "notify_retry_base_s": 0.5,
        "notify_send_timeout_s": 5.0,
        "notify_lease_s": 12.0,
        "public_url": "http://127.0.0.1:8000",
    }
    return make_settings(tmp_path, **{**values, **overrides})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.needs("postgres"))])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'notify.db'}"
    url: str = request.getfixturevalue("postgres_database").url
    return url


def make_world(url: str, tmp_path: Path) -> Iterator[World]:
    device_id = f"nf-{uuid.uuid4().hex[:10]}"  # device ids are global: unique in the shared PostgreSQL
    with seed.organization_db(url, [device_id]) as sessions:
        with transaction(sessions) as session:
            org_id = _org_of(session, device_id)
            user = accounts.create_user(
                session, org_id, f"admin{next(_n)}-{device_id}@plant.example", PASSWORD, "admin"
            )
            user_id = user.id
        yield World(url, sessions, world_settings(tmp_path, url), org_id, user_id, device_id)


def _org_of(session: Session, device_id: str) -> int:
    device = session.get(Device, device_id)
    assert device is not None
    return device.org_id


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    yield from make_world(db_url, tmp_path)


@pytest.fixture
def sqlite_world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(f"sqlite:///{tmp_path / 'notify.db'}", tmp_path)


def smtp_config(inbox: LocalInbox, to: str = "ops@plant.example") -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": inbox.port,
        "security": "none",
        "sender": "edgefleet@plant.example",
        "to": [to],
    }


def at(text: str) -> datetime:
    """A time-zone-aware moment from ISO text (`2026-12-07T22:30:00+01:00`)."""
    return datetime.fromisoformat(text)
