"""PostgreSQL time partitions (`db/partitions.py`, migration 0011): an existing database with rows is
partitioned and keeps them, resends on later days are stored once, retention drops partitions, the
main queries prune partitions, and migrations keep applying to the partitioned database."""

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, text

from edgefleet.server.db import downgrade, make_engine, make_sessionmaker, transaction, upgrade
from edgefleet.server.db import partitions as parts
from edgefleet.server.db.models import EventRow, Organization, TelemetryRow
from edgefleet.server.ingest import IngestStore, Received, WriteResult
from edgefleet.server.services import retention
from tests.server import seed
from tests.support.services import PostgresDatabase

pytestmark = pytest.mark.needs("postgres")
NOW = datetime.now(UTC)


@pytest.fixture
def engine() -> Iterator[Engine]:
    database = PostgresDatabase()
    database.create()
    engine = make_engine(database.url)
    try:
        yield engine
    finally:
        engine.dispose()
        database.drop()


def _seed_old_rows(engine: Engine) -> None:
    """Rows as an unpartitioned database (migration 0010) holds them: 3 months of events, 3 days of
    telemetry, one device."""
    upgrade(engine, "0010")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO organizations (name, event_retention_days, telemetry_retention_days, "
                "created_at) VALUES ('o', 365, 30, now())"
            )
        )
        connection.execute(
            text(
                "INSERT INTO devices (id, org_id, name, kind, online, created_at, tags) "
                "VALUES ('d1', 1, 'd1', 'vibration', false, now(), '[]')"
            )
        )
        for seq, days in enumerate((70, 40, 1), start=1):
            at = NOW - timedelta(days=days)
            connection.execute(
                text(
                    "INSERT INTO events (org_id, device_id, seq, ts, received_at, kind, active, severity, "
                    "data) VALUES (1, 'd1', :seq, :at, :at, 'anomaly', true, 'warning', '{}')"
                ),
                {"seq": seq, "at": at},
            )
            connection.execute(
                text(
                    "INSERT INTO telemetry (org_id, device_id, seq, ts, received_at, mode, uptime_s, "
                    "interval_s, windows, outbox_depth, data) "
                    "VALUES (1, 'd1', :seq, :at, :at, 'running', 1, 60, 10, 0, '{}')"
                ),
                {"seq": seq, "at": NOW - timedelta(days=seq)},
            )


def _relkind(engine: Engine, table: str) -> str:
    with engine.connect() as connection:
        return str(
            connection.execute(text("SELECT relkind FROM pg_class WHERE relname = :t"), {"t": table}).scalar()
        )


def test_an_existing_database_is_partitioned_with_its_rows_and_resends_stay_single(engine: Engine) -> None:
    _seed_old_rows(engine)
    upgrade(engine)
    assert _relkind(engine, "events") == "p" and _relkind(engine, "telemetry") == "p"
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        events = session.execute(
            select(EventRow.id, EventRow.seq, EventRow.received_day).order_by(EventRow.id)
        ).all()
        assert [(e.id, e.seq) for e in events] == [(1, 1), (2, 2), (3, 3)]  # ids kept
        assert events[0].received_day == (NOW - timedelta(days=70)).date()
        with engine.connect() as connection:
            names = {p.name for p in parts.partitions(connection, "telemetry")}
        today = NOW.date()
        assert {
            parts.partition_name("telemetry", today + timedelta(days=d), "day") for d in range(8)
        } <= names
    store = IngestStore(sessions)
    # resends of what came 40 days and one day ago, received today: stored before, so not again
    old = seed.anomaly("d1", seq=2, ts=NOW - timedelta(days=40))
    fresh = seed.anomaly("d1", seq=3, ts=NOW - timedelta(days=1))
    result = store.write([replace(seed.received(m), received_at=NOW) for m in (old, fresh)])
    assert result.stored.get("event", 0) == 0 and result.duplicates == 2
    new = store.write([seed.received(seed.anomaly("d1", seq=4))])
    assert new.stored["event"] == 1
    with sessions() as session:
        assert session.scalar(select(func.max(EventRow.id))) == 4  # the sequence carried on
        assert session.scalar(select(func.count()).select_from(EventRow)) == 4


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_a_resend_on_a_later_day_from_a_device_with_a_wrong_clock_is_stored_once(engine: Engine) -> None:
    with seed.organization_db(_url(engine), ["d2"]) as sessions:
        store = IngestStore(sessions)
        wrong = seed.telemetry("d2", 7, ts=NOW - timedelta(days=400))  # synced to a wrong time server
        yesterday = replace(seed.received(wrong), received_at=NOW - timedelta(days=1))
        assert store.write([yesterday]).stored["telemetry"] == 1
        again = store.write([replace(seed.received(wrong), received_at=NOW)])
        assert again.stored.get("telemetry", 0) == 0 and again.duplicates == 1


def test_retention_drops_whole_partitions_and_a_late_partition_takes_its_rows(engine: Engine) -> None:
    with seed.organization_db(_url(engine), ["d3"]) as sessions:
        store = IngestStore(sessions)
        old_day = NOW - timedelta(days=40)
        store.write([replace(seed.received(seed.telemetry("d3", 1, ts=old_day)), received_at=old_day)])
        with engine.begin() as connection:  # no partition for that day yet: it went to DEFAULT
            assert connection.execute(text("SELECT count(*) FROM telemetry_default")).scalar() == 1
            created = parts.create_partition(connection, "telemetry", old_day.date())
            assert created is not None
            assert connection.execute(text("SELECT count(*) FROM telemetry_default")).scalar() == 0
            assert connection.execute(text(f"SELECT count(*) FROM {created.name}")).scalar() == 1
        store.write([seed.received(seed.telemetry("d3", 2))])
        with transaction(sessions) as session:
            purged = retention.purge_expired(session)  # telemetry: 30 days
        assert created.name in purged.dropped
        assert purged.telemetry == 0  # nothing deleted row by row
        with sessions() as session:
            assert session.scalars(select(TelemetryRow.seq)).all() == [2]
        with engine.connect() as connection:
            assert created.name not in {p.name for p in parts.partitions(connection, "telemetry")}


def test_the_main_queries_read_only_the_partitions_of_their_days(engine: Engine) -> None:
    upgrade(engine)
    today = NOW.date()
    with engine.begin() as connection:
        for d in (3, 2, 1):
            parts.create_partition(connection, "telemetry", today - timedelta(days=d))
        plan = "\n".join(
            connection.execute(
                text(
                    "EXPLAIN SELECT * FROM telemetry WHERE device_id = 'x' "
                    "AND received_day >= :lo AND received_day < :hi"
                ),
                {"lo": today, "hi": today + timedelta(days=1)},
            ).scalars()
        )
        scanned = {name for name in _partition_names(connection) if name in plan}
        assert scanned == {parts.partition_name("telemetry", today, "day")}, plan
        # the ingest's check of earlier days reads those days only (ingest/pg_bulk.py)
        plan = "\n".join(
            connection.execute(
                text(
                    "EXPLAIN SELECT 1 FROM telemetry WHERE device_id = 'x' AND seq = 1 "
                    "AND received_day >= :since AND received_day < :day"
                ),
                {"since": today - timedelta(days=2), "day": today},
            ).scalars()
        )
        scanned = {name for name in _partition_names(connection) if name in plan}
        assert scanned == {
            parts.partition_name("telemetry", today - timedelta(days=d), "day") for d in (1, 2)
        }


def _partition_names(connection: object) -> list[str]:
    from sqlalchemy import Connection

    assert isinstance(connection, Connection)
    return [p.name for p in parts.partitions(connection, "telemetry")] + ["telemetry_default"]


def test_migrations_apply_on_a_partitioned_database_both_ways(engine: Engine) -> None:
    _seed_old_rows(engine)
    upgrade(engine)
    upgrade(engine)  # at head: nothing to do
    with engine.begin() as connection:  # what a later migration does to a partitioned table works
        connection.execute(text("ALTER TABLE events ADD COLUMN probe integer"))
        assert connection.execute(text("SELECT count(probe) FROM events_default")).scalar() == 0
        connection.execute(text("ALTER TABLE events DROP COLUMN probe"))
    downgrade(engine, "0010")
    assert _relkind(engine, "events") == "r"
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM events")).scalar() == 3
        assert connection.execute(text("SELECT count(*) FROM telemetry")).scalar() == 3
    upgrade(engine)
    assert _relkind(engine, "events") == "p"
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(EventRow)) == 3
        assert session.get(Organization, 1) is not None


def test_span_boundaries() -> None:
    assert parts.span_of(date(2026, 12, 31), "month") == (date(2026, 12, 1), date(2027, 1, 1))
    assert parts.span_of(date(2026, 2, 28), "day") == (date(2026, 2, 28), date(2026, 3, 1))
    assert parts.partition_name("events", date(2026, 12, 1), "month") == "events_p202612"


def test_a_resend_after_midnight_waits_for_the_first_copy_still_being_written(engine: Engine) -> None:
    """Two ingest workers: the first copy, received just before midnight, is in a transaction still
    open when the resend, received just after, is stored. The resend takes the device's lock before
    its insert, so it waits for that commit and then sees the copy of the day before."""
    midnight = datetime.combine(NOW.date(), datetime.min.time(), UTC)
    message = seed.anomaly("d3", seq=11, ts=midnight - timedelta(seconds=10))
    first = replace(seed.received(message), received_at=midnight - timedelta(seconds=1))
    resend = replace(seed.received(message), received_at=midnight + timedelta(seconds=1))
    with seed.organization_db(_url(engine), ["d3"]) as sessions:
        results: dict[str, WriteResult] = {}

        def write(name: str, item: Received) -> None:
            results[name] = IngestStore(sessions).write([item])

        with engine.connect() as blocker, blocker.begin():
            # the first copy's transaction stays open after its insert: its last_seen UPDATE waits
            # (NO KEY: the inserts' foreign-key checks pass)
            blocker.execute(text("SELECT 1 FROM devices WHERE id = 'd3' FOR NO KEY UPDATE"))
            writers = [threading.Thread(target=write, args=("first", first))]
            writers[0].start()
            time.sleep(1.0)
            writers.append(threading.Thread(target=write, args=("resend", resend)))
            writers[1].start()
            time.sleep(1.0)
        for writer in writers:
            writer.join(30)
        assert results["first"].stored["event"] == 1
        assert results["resend"].stored.get("event", 0) == 0 and results["resend"].duplicates == 1
        with sessions() as session:
            days = session.scalars(select(EventRow.received_day).where(EventRow.device_id == "d3")).all()
        assert days == [(midnight - timedelta(days=1)).date()]
