"""time partitions: events and telemetry partitioned by received day on PostgreSQL; leader terms

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-20

PostgreSQL: each table becomes a range-partitioned one (by `received_day`, the UTC day of
`received_at`; events by month, telemetry by day, `db/partitions.py`), its rows copied in with their
ids, and its sequence kept. On a large table this copies every row once, under an exclusive lock:
plan the upgrade (the server does not ingest meanwhile; devices keep what is not acknowledged).
SQLite: the column only (a plain table, rows deleted by retention as before).

`leader_terms` holds the fencing token of the worker leadership (`cluster/leader.py`).
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from edgefleet.server.db import partitions
from edgefleet.server.db.types import UtcDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
AHEAD_DAYS = 7


def upgrade() -> None:
    op.create_table(
        "leader_terms",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("term", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("since", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leader_terms"),
    )
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        today = datetime.now(UTC).date()
        for table in partitions.PARTITIONED:
            partitions.partition_table(connection, table, today, AHEAD_DAYS)
        return
    for table in partitions.PARTITIONED:
        op.add_column(
            table, sa.Column("received_day", sa.Date(), nullable=False, server_default="1970-01-01")
        )
        op.execute(f"UPDATE {table} SET received_day = date(received_at)")


def downgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        for table in partitions.PARTITIONED:
            partitions.unpartition_table(connection, table)
    else:
        for table in partitions.PARTITIONED:
            with op.batch_alter_table(table) as batch_op:
                batch_op.drop_column("received_day")
    op.drop_table("leader_terms")
