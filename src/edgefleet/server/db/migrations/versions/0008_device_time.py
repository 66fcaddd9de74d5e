"""device time: clock_synced and implausible-time flags on events and telemetry; receive-time indexes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10

Retention deletes by the server's `received_at` now, so it gets an index (BRIN on PostgreSQL: rows
arrive in that order). Rows stored before this migration keep `clock_synced` true (the flag was not
stored then) and no `time_flag`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("events", "telemetry")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("clock_synced", sa.Boolean(), server_default=sa.text("true"), nullable=False)
            )
            batch_op.add_column(sa.Column("time_flag", sa.String(length=8), nullable=True))
        op.create_index(f"ix_{table}_received_at", table, ["received_at"], postgresql_using="brin")


def downgrade() -> None:
    for table in _TABLES:
        op.drop_index(f"ix_{table}_received_at", table_name=table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("time_flag")
            batch_op.drop_column("clock_synced")
