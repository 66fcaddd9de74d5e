"""PostgreSQL bulk insert: one `INSERT .. SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING RETURNING`.

A multi-row VALUES statement with thousands of parameters costs more to build and parse than to run;
one array parameter per column keeps the SQL text constant and small (psycopg and the server cache it).
"""

import json
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _is_json(column: Any) -> bool:
    return bool(column.type.compile(dialect=_DIALECT) == "JSON")


def _array_type(column: Any) -> str:
    """JSON travels as text (there is no json[] adapter for lists of dicts) and is cast back."""
    return "text[]" if _is_json(column) else f"{column.type.compile(dialect=_DIALECT)}[]"


def unnest_insert_sql(table: Table, columns: list[str], conflict: list[str], returning: list[str]) -> str:
    arrays = ", ".join(f"%({name})s::{_array_type(table.c[name])}" for name in columns)
    select = ", ".join(f"u.{name}::json" if _is_json(table.c[name]) else f"u.{name}" for name in columns)
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"SELECT {select} FROM unnest({arrays}) AS u({', '.join(columns)}) "
        f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING RETURNING {', '.join(returning)}"
    )


def insert_new(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> list[Any]:
    """Insert rows that are not there yet; returns (id, device_id, seq) of those inserted."""
    columns = [c.name for c in table.columns if c.name != "id"]
    sql = unnest_insert_sql(table, columns, ["device_id", "seq"], ["id", "device_id", "seq"])
    params: dict[str, list[Any]] = {}
    for name in columns:
        if _is_json(table.c[name]):
            params[name] = [json.dumps(row[name]) for row in rows]
        else:
            params[name] = [row[name] for row in rows]
    return list(connection.exec_driver_sql(sql, params).all())
