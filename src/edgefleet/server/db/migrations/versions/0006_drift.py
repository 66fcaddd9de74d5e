"""drift: per device and model version drift statistics

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import edgefleet.server.db.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = edgefleet.server.db.types.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "drift_state",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("org_id", _ID, nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=True),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("seq", _ID, nullable=False),
        sa.Column("ts", _UTC, nullable=False),
        sa.Column("drift", sa.Float(), nullable=True),
        sa.Column("score_p50", sa.Float(), nullable=True),
        sa.Column("score_p95", sa.Float(), nullable=True),
        sa.Column("p95_ratio", sa.Float(), nullable=True),
        sa.Column("out_of_limit", sa.Boolean(), nullable=False),
        sa.Column("consecutive", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("out_since", _UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_drift_state_device_id_devices"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_drift_state_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_drift_state")),
    )
    with op.batch_alter_table("drift_state", schema=None) as batch_op:
        batch_op.create_index("ix_drift_state_org", ["org_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("drift_state", schema=None) as batch_op:
        batch_op.drop_index("ix_drift_state_org")
    op.drop_table("drift_state")
