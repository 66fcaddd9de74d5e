"""The batch writer against a database that cannot write: retried, never acknowledged, never rejected.

Real faults only: a PostgreSQL database of its own switched read-only (a failover to a standby looks
the same to a client: `ReadOnlySqlTransaction`), a SQLite file that is full. Only what is the data's
fault is rejected (`store_error`). `db.faults.diagnose` is checked on real driver errors.
"""

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
import pytest
from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.exc import DataError, IntegrityError, InternalError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.contracts import Event
from edgefleet.server.db.faults import ErrorLog, Fault, diagnose, watch
from edgefleet.server.db.models import EventRow
from edgefleet.server.errors import DatabaseError
from edgefleet.server.ingest import IngestStore, Received
from edgefleet.server.ingest.writer import BatchWriter
from edgefleet.server.metrics import Metrics
from tests.server import seed
from tests.support.services import PG_ADMIN_DSN, PostgresDatabase

DEVICES = ("d1", "d2", "d3")


# --- classification ------------------------------------------------------------------------------
def _wrapped(orig: Exception, cls: type[Any] = InternalError) -> Exception:
    return cls("INSERT INTO events ...", {}, orig)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("sqlstate", "fault", "kind"),
    [
        ("25006", Fault.UNAVAILABLE, "read_only"),
        ("57P01", Fault.UNAVAILABLE, "shutdown"),
        ("08006", Fault.UNAVAILABLE, "connection"),
        ("53100", Fault.UNAVAILABLE, "disk_full"),
        ("53300", Fault.UNAVAILABLE, "too_many_connections"),
        ("40001", Fault.UNAVAILABLE, "serialization_failure"),
        ("40P01", Fault.UNAVAILABLE, "deadlock"),
        ("42P01", Fault.UNAVAILABLE, "schema"),
        ("XX000", Fault.UNAVAILABLE, "internal"),
        ("22P05", Fault.DATA, "data_exception"),
        ("22003", Fault.DATA, "data_exception"),
        ("23505", Fault.DATA, "constraint"),
        ("54000", Fault.DATA, "program_limit"),
    ],
)
def test_postgresql_errors_are_classified_by_sqlstate(sqlstate: str, fault: Fault, kind: str) -> None:
    orig = psycopg.errors.lookup(sqlstate)("message from the server\nDETAIL: more")
    diagnosis = diagnose(_wrapped(orig))
    assert (diagnosis.fault, diagnosis.kind) == (fault, kind)
    assert sqlstate in diagnosis.detail and "\n" not in diagnosis.detail


def test_unknown_sqlstates_and_driver_errors_without_one_are_retried() -> None:
    assert diagnose(_wrapped(psycopg.errors.lookup("0A000")("feature"))).retry  # not the data's fault
    refused = psycopg.OperationalError("connection failed: Connection refused")
    assert diagnose(_wrapped(refused, OperationalError)).kind == "connection"
    assert diagnose(DatabaseError("migrating failed")).retry  # no cause: nothing says it is the data
    nul = psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
    assert diagnose(_wrapped(nul, DataError)).fault is Fault.DATA


def test_read_only_and_shutdown_replace_the_connection() -> None:
    assert diagnose(_wrapped(psycopg.errors.lookup("25006")("read-only"))).reconnect
    assert diagnose(_wrapped(psycopg.errors.lookup("57P01")("terminating"))).reconnect
    assert not diagnose(_wrapped(psycopg.errors.lookup("40001")("serialize"))).reconnect


def _sqlite_error(tmp_path: Path, make: str) -> Exception:
    path = tmp_path / f"{make}.db"
    setup = sqlite3.connect(path)
    setup.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    setup.execute("INSERT INTO t VALUES (1, 'a')")
    setup.commit()
    setup.close()
    url = f"file:{path}?mode=ro" if make == "read_only" else str(path)
    engine = create_engine("sqlite://", creator=lambda: sqlite3.connect(url, uri=True, timeout=0))
    blocker = sqlite3.connect(path, timeout=0)
    try:
        if make == "locked":
            blocker.execute("BEGIN EXCLUSIVE")
        with engine.begin() as connection:
            if make == "full":
                pages = connection.exec_driver_sql("PRAGMA page_count").scalar()
                connection.exec_driver_sql(f"PRAGMA max_page_count = {pages}")
                connection.exec_driver_sql("INSERT INTO t (v) VALUES (?)", (("x" * 100_000),))
            elif make == "constraint":
                connection.exec_driver_sql("INSERT INTO t VALUES (1, 'again')")
            else:
                connection.exec_driver_sql("INSERT INTO t (v) VALUES ('b')")
    except Exception as err:
        return err
    finally:
        blocker.close()
        engine.dispose()
    raise AssertionError(f"no error for {make}")


@pytest.mark.parametrize(
    ("make", "fault", "kind"),
    [
        ("read_only", Fault.UNAVAILABLE, "read_only"),
        ("locked", Fault.UNAVAILABLE, "locked"),
        ("full", Fault.UNAVAILABLE, "disk_full"),
        ("constraint", Fault.DATA, "constraint"),
    ],
)
def test_sqlite_errors_are_classified_by_their_text(
    tmp_path: Path, make: str, fault: Fault, kind: str
) -> None:
    err = _sqlite_error(tmp_path, make)
    assert isinstance(err, OperationalError | IntegrityError)
    assert (diagnose(err).fault, diagnose(err).kind) == (fault, kind)


def test_sqlite_disk_io_error_text_is_retried() -> None:
    assert diagnose(_wrapped(sqlite3.OperationalError("disk I/O error"), OperationalError)).kind == "io_error"


def test_errors_of_the_code_on_one_message_are_the_data_s_fault() -> None:
    assert diagnose(ValueError("naive datetime given to a UTC column")).fault is Fault.DATA
    assert diagnose(ConnectionResetError("reset")).retry


def test_error_log_reports_one_line_per_kind_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.error_log")
    errors = ErrorLog(logger, every_s=0.2)
    with caplog.at_level(logging.WARNING, logger="tests.error_log"):
        for _ in range(50):
            errors("read_only", "cannot write (%s)", "read_only")
        errors("disk_full", "cannot write (%s)", "disk_full")
        time.sleep(0.25)
        errors("read_only", "cannot write (%s)", "read_only")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "cannot write (read_only)",
        "cannot write (disk_full)",
        "cannot write (read_only) (49 more like it since the last report)",
    ]
    assert not any(r.exc_info for r in caplog.records)


# --- the writer against real faults --------------------------------------------------------------
class Acked:
    """What the writer acknowledged (`on_committed`), in order."""

    def __init__(self) -> None:
        self.items: list[Received] = []
        self.lock = threading.Lock()

    def __call__(self, batch: list[Received], _result: object) -> None:
        with self.lock:
            self.items.extend(batch)

    def wait_for(self, count: int, timeout: float) -> float:
        started = time.monotonic()
        while len(self.items) < count and time.monotonic() - started < timeout:
            time.sleep(0.02)
        return time.monotonic() - started


def _events(count: int) -> list[Received]:
    now = datetime.now(UTC)
    return [seed.received(seed.anomaly(DEVICES[i % 3], seq=i + 1, ts=now)) for i in range(count)]


def _stored(sessions: sessionmaker[Session]) -> tuple[int, int]:
    """(rows, distinct (device_id, seq))."""
    with sessions() as session:
        rows = session.scalar(select(func.count()).select_from(EventRow))
        pairs = session.scalar(
            select(func.count()).select_from(select(EventRow.device_id, EventRow.seq).distinct().subquery())
        )
    return int(rows or 0), int(pairs or 0)


def _rejected(metrics: Metrics) -> float:
    return sum(
        s.value
        for m in metrics.registry.collect()
        if m.name == "edgefleet_ingest_rejected"
        for s in m.samples
        if s.name.endswith("_total")
    )


@pytest.fixture
def private_postgres() -> Iterator[PostgresDatabase]:
    """A database of this test's own: switching it read-only touches nobody else's."""
    from tests.support.services import SERVICE_CHECKS

    problem = SERVICE_CHECKS["postgres"]()
    if problem:
        pytest.skip(problem)
    database = PostgresDatabase()
    database.create()
    try:
        yield database
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:  # never leave it read-only
            admin.execute(f'ALTER DATABASE "{database.name}" RESET default_transaction_read_only')
        database.drop()


def _set_read_only(database: PostgresDatabase, on: bool, *, terminate: bool) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        setting = "SET default_transaction_read_only = on" if on else "RESET default_transaction_read_only"
        admin.execute(f'ALTER DATABASE "{database.name}" {setting}')
        if terminate:  # what a failover does to the connections of the old primary
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database.name,),
            )


def _engine_of(sessions: sessionmaker[Session]) -> Engine:
    bind = sessions.kw["bind"]
    assert isinstance(bind, Engine)
    return bind


@pytest.mark.needs("postgres")
def test_postgresql_read_only_for_seconds_loses_nothing_and_rejects_nothing(
    private_postgres: PostgresDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    """The finding: 300 of 300 rejected as store_error and acknowledged. Now: kept, retried, stored once.

    Back to read-write, the old read-only connections are *not* terminated (a standby promoted, or
    the pool still pointing at the old primary): the writer must replace them by itself."""
    with seed.organization_db(private_postgres.url, DEVICES) as sessions:
        watch(_engine_of(sessions))
        metrics, acked = Metrics(), Acked()
        writer = BatchWriter(IngestStore(sessions), metrics, batch_size=100, on_committed=acked)
        writer.start()
        try:
            with caplog.at_level(logging.INFO, logger="edgefleet.server.ingest.writer"):
                _set_read_only(private_postgres, True, terminate=True)
                for item in _events(300):
                    writer.put(item)
                time.sleep(4.0)
                assert acked.items == []  # nothing acknowledged while nothing can be stored
                assert metrics.registry.get_sample_value("edgefleet_ingest_write_failing") == 1
                _set_read_only(private_postgres, False, terminate=False)
                recovery_s = acked.wait_for(300, timeout=20)
        finally:
            writer.stop()
        assert len(acked.items) == 300 and len(set(acked.items)) == 300
        assert _stored(sessions) == (300, 300)
        assert _rejected(metrics) == 0
        assert recovery_s < 2.5, f"recovered {recovery_s:.2f} s after the database came back"
        retries = metrics.registry.get_sample_value(
            "edgefleet_ingest_write_retries_total", {"kind": "read_only"}
        )
        assert retries is not None and retries >= 3
        assert metrics.registry.get_sample_value("edgefleet_ingest_write_failing") == 0
    lines = [r for r in caplog.records if r.name == "edgefleet.server.ingest.writer"]
    assert 2 <= len(lines) <= 4, [r.getMessage() for r in lines]  # one per kind, then recovery
    assert not any(r.exc_info or "\n" in r.getMessage() for r in lines)


@pytest.mark.needs("postgres")
def test_postgresql_still_rejects_what_is_the_data_s_fault(private_postgres: PostgresDatabase) -> None:
    """A NUL character cannot be stored in PostgreSQL text (22P05): that one message is rejected,
    its batch neighbours are stored."""
    with seed.organization_db(private_postgres.url, DEVICES) as sessions:
        metrics, acked = Metrics(), Acked()
        writer = BatchWriter(IngestStore(sessions), metrics, batch_size=100, on_committed=acked)
        items = _events(20)
        poison = seed.anomaly("d1", seq=999)
        poisoned = Event.model_validate({**poison.model_dump(), "message": "bad\x00text"})
        items.insert(7, seed.received(poisoned))
        for item in items:
            writer.put(item)
        writer.start()
        acked.wait_for(21, timeout=20)
        writer.stop()
        assert _stored(sessions) == (20, 20)
        assert (
            metrics.registry.get_sample_value("edgefleet_ingest_rejected_total", {"reason": "store_error"})
            == 1
        )


def test_sqlite_full_disk_for_seconds_loses_nothing(tmp_path: Path) -> None:
    """SQLite 'database or disk is full' (a page limit stands in for the disk) is retried until there
    is space again."""
    limit: dict[str, int | None] = {"pages": None}
    with seed.organization_db(f"sqlite:///{tmp_path / 'full.db'}", DEVICES) as sessions:
        engine = _engine_of(sessions)

        @event.listens_for(engine, "checkout")
        def _limit(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA max_page_count = {limit['pages'] or 1_000_000_000}")
            cursor.close()

        with engine.connect() as connection:
            limit["pages"] = int(connection.execute(text("PRAGMA page_count")).scalar_one())
        metrics, acked = Metrics(), Acked()
        writer = BatchWriter(IngestStore(sessions), metrics, batch_size=50, on_committed=acked)
        writer.start()
        try:
            for item in _events(200):
                writer.put(item)
            time.sleep(2.0)
            assert acked.items == []
            limit["pages"] = None
            recovery_s = acked.wait_for(200, timeout=20)
        finally:
            writer.stop()
        assert len(acked.items) == 200 and _stored(sessions) == (200, 200)
        assert _rejected(metrics) == 0 and recovery_s < 2.5
        full = metrics.registry.get_sample_value(
            "edgefleet_ingest_write_retries_total", {"kind": "disk_full"}
        )
        assert full is not None and full >= 2


def test_a_stop_during_an_outage_gives_up_without_acknowledging(tmp_path: Path) -> None:
    with seed.organization_db(f"sqlite:///{tmp_path / 'stop.db'}", DEVICES) as sessions:
        engine = _engine_of(sessions)

        @event.listens_for(engine, "checkout")
        def _full(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA max_page_count = 1")
            cursor.close()

        metrics, acked = Metrics(), Acked()
        writer = BatchWriter(IngestStore(sessions), metrics, batch_size=50, queue_max=100, on_committed=acked)
        writer.start()
        for item in _events(100):
            writer.put(item)
        started = time.monotonic()
        writer.stop(timeout=15)
        assert time.monotonic() - started < 10  # the grace period, not forever
        assert acked.items == [] and _rejected(metrics) == 0
        event.remove(engine, "checkout", _full)
        assert _stored(sessions) == (0, 0)
