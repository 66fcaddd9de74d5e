"""PostgreSQL time partitions of events and telemetry (declarative range partitioning).

Both tables are partitioned by `received_day`, the UTC day the server received the row (its clock is
the authority for retention): events by month, telemetry (the bulk) by day. The worker keeps
partitions created `PARTITION_AHEAD_DAYS` ahead (`ensure_partitions`); a DEFAULT partition catches a
row nothing else covers (the worker was down longer than that), and its rows are moved into the
right partition when that is created. Retention drops whole partitions (`drop_before`) instead of
deleting rows. SQLite keeps one plain table each and deletes rows.

A unique key on a partitioned table must hold the partition key, so PostgreSQL enforces
(device_id, seq, received_day); the ingest checks earlier days itself (`ingest/pg_bulk.py`).
"""

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, text

log = logging.getLogger(__name__)
Span = Literal["day", "month"]
PARTITIONED: dict[str, Span] = {"events": "month", "telemetry": "day"}
"""Table -> the span of one partition: a day of telemetry is about what a month of events is."""
INDEXES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "events": (
        ("ix_events_device_ts", "btree", "device_id, ts"),
        ("ix_events_org_ts", "btree", "org_id, ts"),
        ("ix_events_org_kind_ts", "btree", "org_id, kind, ts"),
        ("ix_events_alarm_id", "btree", "alarm_id"),
        ("ix_events_received_at", "brin", "received_at"),
    ),
    "telemetry": (
        ("ix_telemetry_device_ts", "btree", "device_id, ts"),
        ("ix_telemetry_org_ts", "btree", "org_id, ts"),
        ("ix_telemetry_received_at", "brin", "received_at"),
    ),
}
"""The secondary indexes both layouts share (created on the parent: every partition gets them)."""
_BOUND = re.compile(r"FROM \('(\d{4}-\d{2}-\d{2})'\) TO \('(\d{4}-\d{2}-\d{2})'\)")
_PARTITION_NAME = re.compile(r"^(events|telemetry)_(p\d{6}|p\d{8}|default)$")


def autogenerate_options(dialect: str) -> dict[str, Any]:
    """Alembic comparison options: partitions are not tables of the models, and a constraint made for
    one dialect (`ddl_if`) is not missing on the other."""

    def include_name(name: str | None, type_: str, _parents: Mapping[str, str | None]) -> bool:
        return not (type_ == "table" and name is not None and _PARTITION_NAME.match(name))

    def include_object(item: Any, _name: str | None, _type: str, _reflected: bool, _other: Any) -> bool:
        condition = getattr(item, "_ddl_if", None)
        return condition is None or condition.dialect in (None, dialect)

    return {"include_name": include_name, "include_object": include_object}


@dataclass(frozen=True)
class Partition:
    name: str
    lower: date
    upper: date
    """Exclusive."""


def span_of(day: date, span: Span) -> tuple[date, date]:
    """[lower, upper) of the partition holding `day`."""
    if span == "day":
        return day, day + timedelta(days=1)
    lower = day.replace(day=1)
    upper = (
        lower.replace(year=lower.year + 1, month=1)
        if lower.month == 12
        else lower.replace(month=lower.month + 1)
    )
    return lower, upper


def partition_name(table: str, lower: date, span: Span) -> str:
    return f"{table}_p{lower:%Y%m}" if span == "month" else f"{table}_p{lower:%Y%m%d}"


def is_partitioned(connection: Connection, table: str) -> bool:
    found = connection.execute(
        text("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(:t)"), {"t": table}
    ).first()
    return found is not None


def timescaledb_available(connection: Connection) -> bool:
    """Whether the TimescaleDB extension could be used here (docs/scaling.md: not used, untested)."""
    found = connection.execute(
        text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    ).first()
    return found is not None


def partitions(connection: Connection, table: str) -> list[Partition]:
    """The range partitions of `table`, oldest first (not the DEFAULT partition)."""
    rows = connection.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:t)"
        ),
        {"t": table},
    ).all()
    out = []
    for name, bound in rows:
        match = _BOUND.search(bound or "")
        if match:
            out.append(Partition(name, date.fromisoformat(match[1]), date.fromisoformat(match[2])))
    return sorted(out, key=lambda p: p.lower)


def create_partition(connection: Connection, table: str, day: date) -> Partition | None:
    """Create the partition of `table` holding `day` unless it exists; rows of its range that went to
    the DEFAULT partition meanwhile move into it. Returns the new partition (None: it existed)."""
    span = PARTITIONED[table]
    lower, upper = span_of(day, span)
    name = partition_name(table, lower, span)
    if connection.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is not None:
        return None
    default = f"{table}_default"
    bounds = {"lo": lower, "hi": upper}
    # Built beside the table, filled from the DEFAULT partition, then attached: PostgreSQL refuses to
    # attach a range while DEFAULT holds rows of it.
    connection.execute(text(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)"))
    moved = connection.execute(
        text(
            f"WITH gone AS (DELETE FROM {default} WHERE received_day >= :lo AND received_day < :hi "
            f"RETURNING *) INSERT INTO {name} SELECT * FROM gone"
        ),
        bounds,
    ).rowcount
    connection.execute(
        text(f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ('{lower}') TO ('{upper}')")
    )
    if moved:
        log.warning("partition %s created late: moved %d rows out of %s", name, moved, default)
    return Partition(name, lower, upper)


def ensure_partitions(connection: Connection, today: date, ahead_days: int) -> list[str]:
    """Partitions of every partitioned table from `today` to `today + ahead_days`; names created."""
    created = []
    for table in PARTITIONED:
        if not is_partitioned(connection, table):
            continue
        for offset in range(ahead_days + 1):
            partition = create_partition(connection, table, today + timedelta(days=offset))
            if partition is not None:
                created.append(partition.name)
    return created


def drop_before(connection: Connection, table: str, cutoff: date) -> list[str]:
    """Drop the partitions of `table` whose whole range is before `cutoff`; their names."""
    dropped = []
    for partition in partitions(connection, table):
        if partition.upper <= cutoff:
            connection.execute(text(f"DROP TABLE {partition.name}"))
            dropped.append(partition.name)
    return dropped


def _add_keys(connection: Connection, table: str, partitioned: bool) -> None:
    day = ", received_day" if partitioned else ""
    unique = f"uq_{table}_device_seq_day" if partitioned else f"uq_{table}_device_seq"
    connection.execute(text(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY (id{day})"))
    connection.execute(text(f"ALTER TABLE {table} ADD CONSTRAINT {unique} UNIQUE (device_id, seq{day})"))
    connection.execute(
        text(
            f"ALTER TABLE {table} ADD CONSTRAINT fk_{table}_org_id_organizations FOREIGN KEY (org_id) "
            "REFERENCES organizations (id) ON DELETE CASCADE"
        )
    )
    for name, method, columns in INDEXES[table]:
        connection.execute(text(f"CREATE INDEX {name} ON {table} USING {method} ({columns})"))


def partition_table(connection: Connection, table: str, today: date, ahead_days: int) -> int:
    """Turn the plain `table` into a partitioned one with its rows (an existing database: migration
    0011). Its id sequence carries on. Returns the rows copied."""
    old = f"{table}_unpartitioned"
    span = PARTITIONED[table]
    connection.execute(text(f"ALTER TABLE {table} RENAME TO {old}"))
    connection.execute(
        text(
            f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS, received_day date NOT NULL) "
            "PARTITION BY RANGE (received_day)"
        )
    )
    connection.execute(text(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT"))
    unit = "month" if span == "month" else "day"
    days = connection.execute(
        text(f"SELECT DISTINCT date_trunc('{unit}', received_at AT TIME ZONE 'UTC')::date FROM {old}")
    ).scalars()
    for day in [*days, *(today + timedelta(days=d) for d in range(ahead_days + 1))]:
        create_partition(connection, table, day)
    copied = connection.execute(
        text(f"INSERT INTO {table} SELECT *, (received_at AT TIME ZONE 'UTC')::date FROM {old}")
    ).rowcount
    connection.execute(text(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id"))
    connection.execute(text(f"DROP TABLE {old}"))
    _add_keys(connection, table, partitioned=True)
    connection.execute(text(f"ANALYZE {table}"))
    return copied


def unpartition_table(connection: Connection, table: str) -> int:
    """The reverse of `partition_table` (downgrading 0011): one plain table with every row."""
    old = f"{table}_partitioned"
    connection.execute(text(f"ALTER TABLE {table} RENAME TO {old}"))
    connection.execute(text(f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS)"))
    connection.execute(text(f"ALTER TABLE {table} DROP COLUMN received_day"))
    columns = ", ".join(
        connection.execute(
            text(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:t) AND attnum > 0 "
                "AND NOT attisdropped ORDER BY attnum"
            ),
            {"t": table},
        ).scalars()
    )
    copied = connection.execute(text(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {old}")).rowcount
    connection.execute(text(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id"))
    connection.execute(text(f"DROP TABLE {old}"))  # and its partitions
    _add_keys(connection, table, partitioned=False)
    return copied
