"""Migrations apply from empty on SQLite (WAL) and PostgreSQL, and match the models."""

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from edgefleet.server.db import downgrade, make_engine, upgrade
from edgefleet.server.db.migrate import MIGRATIONS
from edgefleet.server.db.models import Base
from edgefleet.server.db.partitions import autogenerate_options
from tests.support.services import PostgresDatabase

EXPECTED_TABLES = {
    "organizations",
    "users",
    "invites",
    "api_keys",
    "devices",
    "events",
    "telemetry",
    "telemetry_hourly",
    "alarms",
    "models",
    "audit_log",
    "signing_keys",
    "model_packages",
    "model_defaults",
}


def _check_schema(engine: Engine) -> None:
    inspector = inspect(engine)
    assert set(inspector.get_table_names()) >= EXPECTED_TABLES
    event_indexes = {ix["name"] for ix in inspector.get_indexes("events")}
    assert {"ix_events_device_ts", "ix_events_org_ts", "ix_events_org_kind_ts"} <= event_indexes
    uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("events")}
    partitioned = engine.dialect.name == "postgresql"  # the unique key holds the partition key there
    assert (("device_id", "seq", "received_day") if partitioned else ("device_id", "seq")) in uniques
    with engine.connect() as connection:
        options = autogenerate_options(engine.dialect.name)  # partitions are not model tables
        diff = compare_metadata(MigrationContext.configure(connection, opts=options), Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"


def test_sqlite_migrates_from_empty_in_wal_mode(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade(engine)
    _check_schema(engine)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    upgrade(engine)  # idempotent
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}


@pytest.mark.needs("postgres")
def test_postgresql_migrates_from_empty(postgres_database: PostgresDatabase) -> None:
    engine = make_engine(postgres_database.url)
    try:
        downgrade(engine, "base")  # the session database may have been used by another test
        upgrade(engine)
        _check_schema(engine)
        with engine.connect() as connection:
            partial = connection.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_alarms_open_device_kind'")
            ).scalar()
        assert partial is not None and "WHERE (cleared_at IS NULL)" in partial
    finally:
        engine.dispose()


def test_migrations_ship_inside_the_package() -> None:
    assert (MIGRATIONS / "env.py").is_file()
    assert (MIGRATIONS / "script.py.mako").is_file()
    assert list((MIGRATIONS / "versions").glob("0001_*.py"))
