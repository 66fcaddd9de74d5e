"""The server's periodic loops, each tagged with the role that runs it.

A `LoopSpec` names a loop, its role (`worker` for the singletons: one active copy in the whole
installation, on the elected leader), its interval, and how to build its pass from a `LoopContext`.
`run_loops` starts the loops of this process's role (`all` runs every role's) and, for the worker
role, the leader election that gates them. A pass runs on a worker thread; work that must not run
twice does its writes in `LoopContext.transaction()`, which is fenced: a deposed leader's pass rolls
back (`leader.py`).

To add a loop, put its `LoopSpec` in `builtin_loops()` (or `register_loop` it at import).
"""

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from edgefleet.contracts import utc_now
from edgefleet.server.cluster.leader import Leadership, LocalLeadership, NotLeaderError, PostgresLeadership
from edgefleet.server.context import ServerContext
from edgefleet.server.db import faults, partitions, transaction
from edgefleet.server.health import Health
from edgefleet.server.settings import ServerSettings

log = logging.getLogger(__name__)
LoopRole = Literal["api", "ingest", "worker"]
LOCK_TIMEOUT = "SET LOCAL lock_timeout = '5s'"
"""Partition DDL waits at most this for the ingest's locks, then tries again next pass."""


@dataclass
class LoopContext:
    context: ServerContext
    leadership: Leadership = field(default_factory=LocalLeadership)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A transaction that commits only while this process leads (see `leader.py`)."""
        with transaction(self.context.sessions) as session:
            self.leadership.fence(session)
            yield session


@dataclass(frozen=True)
class LoopSpec:
    name: str
    role: LoopRole
    interval_s: Callable[[ServerSettings], float]
    make: Callable[[LoopContext], Callable[[], Any]]
    """Returns the pass (run on a worker thread every `interval_s`)."""
    postgres_only: bool = False
    first_after_s: Callable[[ServerSettings], float] | None = None
    """The first pass after start (default: `interval_s`); a leader that takes over runs at once."""


_REGISTERED: list[LoopSpec] = []


def register_loop(spec: LoopSpec) -> None:
    _REGISTERED.append(spec)


# --- the built-in loops ---------------------------------------------------------------------------
def _alarm_auto_clear(loop: LoopContext) -> Callable[[], None]:
    from edgefleet.server.services import alarms as alarm_service

    context = loop.context

    def once() -> None:
        with loop.transaction() as session:
            cleared = alarm_service.auto_clear(session, context.settings.alarm_clear_after_s)
        for alarm in cleared:  # announced once committed
            data = {"change": "cleared", "id": alarm.id, "device_id": alarm.device_id, "kind": alarm.kind}
            context.hub.publish(alarm.org_id, "alarm", {**data, "clear_reason": "auto"})

    return once


def _retention(loop: LoopContext) -> Callable[[], None]:
    from edgefleet.server.services import retention

    def once() -> None:
        with loop.transaction() as session:
            if session.connection().dialect.name == "postgresql":
                session.execute(text(LOCK_TIMEOUT))
            purged = retention.purge_expired(session)
        if purged.events or purged.telemetry or purged.dropped:
            log.info(
                "retention: deleted %d events and %d telemetry rows; dropped partitions: %s",
                purged.events,
                purged.telemetry,
                ", ".join(purged.dropped) or "none",
            )

    return once


def _partitions_ahead(loop: LoopContext) -> Callable[[], None]:
    def once() -> None:
        with loop.transaction() as session:
            session.execute(text(LOCK_TIMEOUT))
            ahead = loop.context.settings.partition_ahead_days
            created = partitions.ensure_partitions(session.connection(), utc_now().date(), ahead)
        if created:
            log.info("created partitions %s", ", ".join(created))

    return once


def _rollouts(loop: LoopContext) -> Callable[[], Any]:
    from edgefleet.server.rollout_engine import engine_for

    engine = engine_for(loop.context, loop.context.settings.public_url, fence=loop.leadership.fence)
    return engine.run_once


def builtin_loops() -> list[LoopSpec]:
    return [
        LoopSpec("alarm auto-clear", "worker", lambda s: s.alarm_check_interval_s, _alarm_auto_clear),
        LoopSpec(
            "retention purge",
            "worker",
            lambda s: s.retention_interval_s,
            _retention,
            first_after_s=lambda s: s.alarm_check_interval_s,
        ),
        LoopSpec(
            "partitions ahead",
            "worker",
            lambda s: timedelta(hours=1).total_seconds(),
            _partitions_ahead,
            postgres_only=True,
            first_after_s=lambda s: s.alarm_check_interval_s,
        ),
        LoopSpec("rollout engine pass", "worker", lambda s: s.rollout_interval_s, _rollouts),
    ]


def loops_for(role: str, postgres: bool) -> list[LoopSpec]:
    specs = [*builtin_loops(), *_REGISTERED]
    return [s for s in specs if role in ("all", s.role) and (postgres or not s.postgres_only)]


# --- running them ---------------------------------------------------------------------------------
async def _repeat(
    spec: LoopSpec, settings: ServerSettings, health: Health, leadership: Leadership, once: Callable[[], Any]
) -> None:
    """Run `once` on a worker thread every `interval_s` while the database is ready (and, for the
    worker role, while this process leads: within 0.2 s of taking over). A failure is one compact log
    line per kind and minute (with the repeats counted), not a traceback per pass."""
    errors = faults.ErrorLog(log, every_s=60.0)
    interval_s = spec.interval_s(settings)
    wait_s = spec.first_after_s(settings) if spec.first_after_s else interval_s
    while True:
        await asyncio.sleep(wait_s)
        if not health.schema_ready or (spec.role == "worker" and not leadership.is_leader):
            wait_s = min(interval_s, 0.2)
            continue
        wait_s = interval_s
        try:
            await asyncio.to_thread(once)
        except NotLeaderError as err:
            log.warning("%s: not committed: %s", spec.name, err)
        except Exception as err:
            diagnosis = faults.diagnose(err)
            if diagnosis.retry:
                errors(diagnosis.kind, "%s failed: %s; retrying", spec.name, diagnosis.detail)
            else:  # a bug: its traceback, once a minute
                errors(diagnosis.kind, "%s failed", spec.name, level=logging.ERROR, exc_info=True)


async def _elect(leadership: Leadership, interval_s: float, health: Health) -> None:
    while True:
        if health.schema_ready:
            await asyncio.to_thread(leadership.poll)
        await asyncio.sleep(interval_s)


def leadership_for(context: ServerContext) -> Leadership:
    """Leader election among worker processes on PostgreSQL; the only copy otherwise (role `all`)."""
    settings = context.settings
    if settings.role == "worker":
        return PostgresLeadership(context.engine)
    return LocalLeadership()


def start_loops(context: ServerContext, health: Health, leadership: Leadership) -> list[asyncio.Task[None]]:
    """Tasks of this process's loops (and of its leader election)."""
    settings = context.settings
    loop = LoopContext(context, leadership)
    postgres = context.engine.dialect.name == "postgresql"
    tasks = []
    if not isinstance(leadership, LocalLeadership):
        tasks.append(asyncio.create_task(_elect(leadership, settings.leader_poll_s, health)))
    for spec in loops_for(settings.role, postgres):
        once = spec.make(loop)
        tasks.append(asyncio.create_task(_repeat(spec, settings, health, leadership, once)))
    return tasks
