"""Retention: delete raw events and telemetry older than each organization's retention period.

Age is measured by the server's clock (`received_at`), never the device's `ts`: a device whose clock
runs a year behind must not have what it sends deleted on arrival, nor one a year ahead keep it forever.
Hourly telemetry rollups, alarms and the audit log are kept.

On PostgreSQL the tables are partitioned by received day (`db/partitions.py`): partitions wholly older
than the longest retention of any organization are dropped, not deleted row by row, so what that
retention covers is kept until its whole partition (a day of telemetry, a month of events) is past it.
Organizations with a shorter retention still have their rows deleted.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Delete, column, delete, func, select
from sqlalchemy import table as sql_table
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import TableClause

from edgefleet.contracts import utc_now
from edgefleet.server.db import partitions
from edgefleet.server.db.models import EventRow, Organization, TelemetryRow

_TABLES: dict[str, type[EventRow | TelemetryRow]] = {"events": EventRow, "telemetry": TelemetryRow}


def _deleted(session: Session, statement: Delete) -> int:
    return cast(CursorResult[Any], session.execute(statement)).rowcount


@dataclass(frozen=True)
class Purged:
    events: int
    telemetry: int
    dropped: tuple[str, ...] = ()
    """Partitions dropped (PostgreSQL)."""


def _drop_partitions(session: Session, now: datetime, longest: Sequence[int | None]) -> list[str]:
    """Drop what every organization's retention is past; the partitions dropped."""
    connection = session.connection()
    dropped: list[str] = []
    for table, days in zip(partitions.PARTITIONED, longest, strict=True):
        if days is not None and partitions.is_partitioned(connection, table):
            dropped += partitions.drop_before(connection, table, (now - timedelta(days=days)).date())
    return dropped


def purge_expired(session: Session, now: datetime | None = None) -> Purged:
    now = now or utc_now()
    longest = tuple(
        session.execute(
            select(
                func.max(Organization.event_retention_days), func.max(Organization.telemetry_retention_days)
            )
        ).one()
    )
    postgres = session.connection().dialect.name == "postgresql"
    dropped = _drop_partitions(session, now, longest) if postgres else []
    deleted = {"events": 0, "telemetry": 0}
    for org_id, *days in session.execute(
        select(Organization.id, Organization.event_retention_days, Organization.telemetry_retention_days)
    ):
        for (table, model), keep, most in zip(_TABLES.items(), days, longest, strict=True):
            cutoff = now - timedelta(days=keep)
            target: TableClause | type[EventRow | TelemetryRow] = model
            if postgres and keep == most:  # dropped by partition; only a DEFAULT partition's rows
                target = sql_table(f"{table}_default", column("org_id"), column("received_at"))
            statement = delete(target)
            columns = statement.table.c
            deleted[table] += _deleted(
                session, statement.where(columns.org_id == org_id, columns.received_at < cutoff)
            )
    return Purged(deleted["events"], deleted["telemetry"], tuple(dropped))
