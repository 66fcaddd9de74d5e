"""PostgreSQL bulk insert: the whole batch as one JSON parameter, expanded by `json_to_recordset`.

`INSERT .. SELECT .. FROM json_to_recordset($1::json) AS r(col type, ..) ON CONFLICT DO NOTHING
RETURNING`: the SQL text is constant (the server caches its plan), and the rows are serialized by
orjson in C. Passing one array parameter per column instead (`unnest`) spent most of its time in
psycopg's Python-level list dumper; a multi-row VALUES statement with thousands of parameters costs
more to build and parse than to run.
"""

from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

import orjson
from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _type(table: Table, name: str) -> str:
    return str(table.c[name].type.compile(dialect=_DIALECT))


@cache
def recordset_insert_sql(table: Table, columns: tuple[str, ...], conflict: tuple[str, ...]) -> str:
    names = ", ".join(columns)
    spec = ", ".join(f"{name} {_type(table, name)}" for name in columns)
    return (
        f"INSERT INTO {table.name} ({names}) "
        f"SELECT {names} FROM json_to_recordset(%(rows)s::json) AS r({spec}) "
        f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING RETURNING id, {', '.join(conflict)}"
    )


@cache
def partitioned_insert_sql(table: Table, columns: tuple[str, ...]) -> str:
    """As `recordset_insert_sql` for a table partitioned by `received_day` (`db/partitions.py`). Its
    unique key (device_id, seq, received_day) catches a resend on the same day, atomically; the
    NOT EXISTS catches one whose first copy came on an earlier day, in the days from `since` (its
    partitions only: the range is a constant, so PostgreSQL prunes the rest)."""
    names = ", ".join(columns)
    spec = ", ".join(f"{name} {_type(table, name)}" for name in columns)
    return (
        f"INSERT INTO {table.name} ({names}) "
        f"SELECT {names} FROM json_to_recordset(%(rows)s::json) AS r({spec}) "
        f"WHERE NOT EXISTS (SELECT 1 FROM {table.name} AS e WHERE e.device_id = r.device_id "
        "AND e.seq = r.seq AND e.received_day >= %(since)s AND e.received_day < %(day)s) "
        "ON CONFLICT (device_id, seq, received_day) DO NOTHING RETURNING id, device_id, seq"
    )


RESEND_HORIZON = timedelta(days=2)
"""How far before a message's device time its first copy can have been received, for a device whose
clock is synchronized and plausible (`time_flag` None): the earlier days the dedup check reads."""


def _since(row: dict[str, Any]) -> date:
    """The first day a copy of this message could have been stored: two days before its device time
    when that can be trusted; otherwise any day (a wrong clock says nothing about when it was sent)."""
    if row.get("clock_synced", True) and row.get("time_flag") is None:
        ts: datetime = row["ts"]
        return (ts - RESEND_HORIZON).date()
    return date.min


def _fallback(value: Any) -> str:
    """What orjson cannot serialize natively goes as its text (never fail a batch over it)."""
    return str(value)


def insert_new(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> list[Any]:
    """Insert rows that are not there yet; returns (id, device_id, seq) of those inserted."""
    columns = tuple(c.name for c in table.columns if c.name != "id")
    if "received_day" not in columns:
        sql = recordset_insert_sql(table, columns, ("device_id", "seq"))
        payload = orjson.dumps(rows, default=_fallback).decode()
        return list(connection.exec_driver_sql(sql, {"rows": payload}).all())
    # One statement per received day (a batch across midnight has two) and per kind of clock: the
    # rows of a device with a wrong clock must not widen the check of all the others.
    groups: dict[tuple[date, bool], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["received_day"], _since(row) == date.min), []).append(row)
    sql = partitioned_insert_sql(table, columns)
    inserted: list[Any] = []
    for (day, _), group in groups.items():
        since = min(_since(row) for row in group)
        payload = orjson.dumps(group, default=_fallback).decode()
        params = {"rows": payload, "since": since, "day": day}
        inserted += connection.exec_driver_sql(sql, params).all()
    return inserted


ALARM_LOCKS = 0x6566_616C  # "efal": the key space of the per-device locks below


def lock_devices(connection: Connection, device_ids: set[str]) -> None:
    """Take a transaction lock per device (in one order, so two writers cannot deadlock): two ingest
    workers storing events of one device apply them to its alarm one after the other, instead of both
    opening it (a unique violation) or both counting from the same value."""
    if device_ids:
        connection.exec_driver_sql(
            "SELECT pg_advisory_xact_lock(%(space)s::int, k) FROM "
            "(SELECT DISTINCT hashtext(d) AS k FROM unnest(%(ids)s::text[]) AS d ORDER BY 1) AS keys",
            {"space": ALARM_LOCKS, "ids": sorted(device_ids)},
        )
