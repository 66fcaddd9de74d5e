"""Alembic environment: runs with the engine handed over by `edgefleet.server.db.migrate`."""

from alembic import context
from sqlalchemy import Engine, create_engine, text

from edgefleet.server.db.models import Base
from edgefleet.server.db.partitions import autogenerate_options

MIGRATION_LOCK = 0x6566_6D69  # "efmi": one migrating process at a time on PostgreSQL (several roles start)

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if not isinstance(engine, Engine):
        engine = create_engine(config.get_main_option("url") or "")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            **autogenerate_options(connection.dialect.name),
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":  # the others wait, then find nothing to do
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            context.run_migrations()
        connection.commit()


run_migrations_online()
