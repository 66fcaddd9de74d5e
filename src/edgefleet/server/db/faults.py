"""Whose fault is a database error: the database's (retry) or the data's (reject)?

`diagnose(err)` classifies by SQLSTATE on PostgreSQL (psycopg's `err.orig.sqlstate`) and by the
error text on SQLite. Only errors the data causes are `Fault.DATA` (a value the column refuses, a
constraint): storing the same row again cannot succeed. Everything else, including what is not
recognized, is `Fault.UNAVAILABLE`: the database cannot write now (read-only after a failover,
connection lost, shut down, disk full, serialization failure, too many connections, SQLite locked or
read-only) and the same write may succeed later, so it is retried and never acknowledged.

`watch(engine)` makes SQLAlchemy drop the connection (and the rest of the pool) on errors that mean
"this connection leads nowhere useful": a PostgreSQL session on a read-only standby stays read-only
until it is replaced, so after a failover only new connections can reach the new primary.
"""

import logging
import sqlite3
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError

from edgefleet.server.errors import DatabaseError


class Fault(StrEnum):
    UNAVAILABLE = "unavailable"
    """The database cannot do it now: keep the data and try again."""
    DATA = "data"
    """The data cannot be stored, now or later: reject it."""


@dataclass(frozen=True)
class Diagnosis:
    fault: Fault
    kind: str
    """Short name for logs and metrics: read_only, connection, shutdown, disk_full, ..."""
    detail: str
    """One line: the error's class and first line of its message."""
    reconnect: bool = False
    """The connection is useless now (a standby, a shut-down server): replace it."""

    @property
    def retry(self) -> bool:
        return self.fault is Fault.UNAVAILABLE


_UNAVAILABLE_SQLSTATES: Final[dict[str, str]] = {
    "25006": "read_only",  # read_only_sql_transaction: a hot standby, or default_transaction_read_only
    "57P01": "shutdown",  # admin_shutdown
    "57P02": "shutdown",  # crash_shutdown
    "57P03": "starting",  # cannot_connect_now (starting up, or recovery)
    "57P04": "shutdown",  # database_dropped
    "57014": "canceled",  # query_canceled (statement_timeout, pg_cancel_backend)
    "53100": "disk_full",
    "53200": "out_of_memory",
    "53300": "too_many_connections",
    "40001": "serialization_failure",
    "40P01": "deadlock",
    "55P03": "lock_not_available",
    "42P01": "schema",  # undefined_table: not migrated (yet)
    "42703": "schema",  # undefined_column
    "42501": "permission",  # insufficient_privilege
}
_UNAVAILABLE_CLASSES: Final[dict[str, str]] = {
    "08": "connection",
    "25": "transaction_state",
    "28": "authorization",
    "3D": "no_database",
    "40": "transaction_rollback",
    "53": "resources",
    "55": "object_state",
    "57": "operator_intervention",
    "58": "io_error",
    "XX": "internal",
}
_DATA_CLASSES: Final[dict[str, str]] = {
    "22": "data_exception",  # a value the column refuses: bad text (NUL), out of range, bad JSON
    "23": "constraint",  # integrity_constraint_violation
    "54": "program_limit",  # a value too large for its index, a statement too complex
}
_RECONNECT_KINDS: Final = frozenset({"read_only", "shutdown", "starting", "connection", "io_error"})
_SQLITE_TEXT: Final[tuple[tuple[str, str], ...]] = (
    ("database is locked", "locked"),
    ("database table is locked", "locked"),
    ("disk i/o error", "io_error"),
    ("database or disk is full", "disk_full"),
    ("attempt to write a readonly database", "read_only"),
    ("unable to open database file", "cannot_open"),
    ("no such table", "schema"),
    ("no such column", "schema"),
)
_SQLITE_DATA_TEXT: Final = ("error binding parameter", "is not supported", "string or blob too big")


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:240] if text else ''}"


def _by_sqlstate(sqlstate: str, detail: str) -> Diagnosis:
    kind = _UNAVAILABLE_SQLSTATES.get(sqlstate)
    if kind is None and sqlstate[:2] in _DATA_CLASSES:
        return Diagnosis(Fault.DATA, _DATA_CLASSES[sqlstate[:2]], f"{sqlstate} {detail}")
    kind = kind or _UNAVAILABLE_CLASSES.get(sqlstate[:2], f"sqlstate_{sqlstate}")
    return Diagnosis(Fault.UNAVAILABLE, kind, f"{sqlstate} {detail}", kind in _RECONNECT_KINDS)


def _by_sqlite(orig: sqlite3.Error, detail: str) -> Diagnosis:
    text = str(orig).lower()
    if isinstance(orig, sqlite3.IntegrityError):
        return Diagnosis(Fault.DATA, "constraint", detail)
    if isinstance(orig, sqlite3.DataError) or any(t in text for t in _SQLITE_DATA_TEXT):
        return Diagnosis(Fault.DATA, "data_exception", detail)
    kind = next((k for t, k in _SQLITE_TEXT if t in text), "database")
    return Diagnosis(Fault.UNAVAILABLE, kind, detail, kind in ("read_only", "io_error", "cannot_open"))


def _by_dbapi_class(orig: BaseException, detail: str) -> Diagnosis:
    """A driver error without SQLSTATE (raised on the client side, or at connect)."""
    name = type(orig).__name__
    if name in ("IntegrityError", "DataError"):  # PEP 249 classes: e.g. psycopg refusing a NUL byte
        return Diagnosis(Fault.DATA, "data_exception", detail)
    if name == "ProgrammingError" and "adapt" in str(orig).lower():  # a value psycopg cannot send
        return Diagnosis(Fault.DATA, "data_exception", detail)
    return Diagnosis(Fault.UNAVAILABLE, "connection", detail, reconnect=name == "OperationalError")


def diagnose(err: BaseException) -> Diagnosis:
    """Classify an exception raised while writing (see the module docstring)."""
    if isinstance(err, DatabaseError):  # migrate.upgrade wraps the driver's error
        cause = err.__cause__
        return diagnose(cause) if cause else Diagnosis(Fault.UNAVAILABLE, "database", _one_line(err))
    detail = _one_line(err)
    orig: BaseException | None = err.orig if isinstance(err, StatementError) else None
    if orig is None and not isinstance(err, SQLAlchemyError):
        orig = err if type(err).__module__.startswith(("psycopg", "sqlite3")) else None
        if orig is None:
            if isinstance(err, OSError):
                return Diagnosis(Fault.UNAVAILABLE, "connection", detail, reconnect=True)
            return Diagnosis(Fault.DATA, "unstorable", detail)  # the code could not handle this data
    if orig is not None:
        detail = _one_line(orig)
        sqlstate = getattr(orig, "sqlstate", None)
        if isinstance(sqlstate, str) and len(sqlstate) == 5:
            return _by_sqlstate(sqlstate, detail)
        if isinstance(orig, sqlite3.Error):
            return _by_sqlite(orig, detail)
        if isinstance(err, DBAPIError) or type(orig).__module__.startswith("psycopg"):
            return _by_dbapi_class(orig, detail)
        return Diagnosis(Fault.DATA, "unstorable", detail)  # a bind processor refused a value
    return Diagnosis(Fault.UNAVAILABLE, "database", detail)  # pool timeout, disconnection, ...


def _treat_as_disconnect(context: ExceptionContext) -> None:
    if context.is_disconnect:
        return
    error = context.sqlalchemy_exception or context.original_exception
    if error is not None and diagnose(error).reconnect:
        context.is_disconnect = True  # SQLAlchemy invalidates this connection and the pool


def watch(engine: Engine) -> None:
    """Replace connections that cannot write any more (see the module docstring)."""
    if not event.contains(engine, "handle_error", _treat_as_disconnect):
        event.listen(engine, "handle_error", _treat_as_disconnect)


class ErrorLog:
    """Compact, rate-limited error lines: the first of each kind at once, then at most one line per
    kind every `every_s` with the count of repeats in between. No tracebacks: a database outage
    repeats the same error hundreds of times, and formatting the chained tracebacks of each one slowed
    the retries themselves."""

    def __init__(self, logger: logging.Logger, every_s: float = 10.0) -> None:
        self._log = logger
        self._every = every_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(
        self, kind: str, message: str, *args: object, level: int = logging.WARNING, exc_info: bool = False
    ) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -self._every) < self._every:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        more = self._suppressed.pop(kind, 0)
        suffix = f" ({more} more like it since the last report)" if more else ""
        self._log.log(level, message + suffix, *args, exc_info=True if exc_info else None)

    def reset(self) -> int:
        """Forget what was reported (the condition is over); returns the repeats never reported."""
        more = sum(self._suppressed.values())
        self._last.clear()
        self._suppressed.clear()
        return more
