"""PostgreSQL bulk insert: the whole batch as one JSON parameter, expanded by `json_to_recordset`.

`INSERT .. SELECT .. FROM json_to_recordset($1::json) AS r(col type, ..) ON CONFLICT DO NOTHING
RETURNING`: the SQL text is constant (the server caches its plan), and the rows are serialized by
orjson in C. Passing one array parameter per column instead (`unnest`) spent most of its time in
psycopg's Python-level list dumper; a multi-row VALUES statement with thousands of parameters costs
more to build and parse than to run.
"""

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


def _fallback(value: Any) -> str:
    """What orjson cannot serialize natively goes as its text (never fail a batch over it)."""
    return str(value)


def insert_new(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> list[Any]:
    """Insert rows that are not there yet; returns (id, device_id, seq) of those inserted."""
    columns = tuple(c.name for c in table.columns if c.name != "id")
    sql = recordset_insert_sql(table, columns, ("device_id", "seq"))
    payload = orjson.dumps(rows, default=_fallback).decode()
    return list(connection.exec_driver_sql(sql, {"rows": payload}).all())
