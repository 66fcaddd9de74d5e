"""window samples: sampled raw windows devices upload for retraining

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import edgefleet.server.db.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = edgefleet.server.db.types.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "window_samples",
        sa.Column("id", _ID, nullable=False),
        sa.Column("org_id", _ID, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("seq", _ID, nullable=False),
        sa.Column("ts", _UTC, nullable=False),
        sa.Column("received_at", _UTC, nullable=False),
        sa.Column("device_kind", sa.String(length=16), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=True),
        sa.Column("model_version", sa.String(length=32), nullable=True),
        sa.Column("window_index", _ID, nullable=False),
        sa.Column("sample_rate_hz", sa.Float(), nullable=False),
        sa.Column("axes", sa.JSON(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("encoding", sa.String(length=16), nullable=False),
        sa.Column("scale", sa.JSON(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_window_samples_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_window_samples_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_window_samples")),
        sa.UniqueConstraint("device_id", "seq", name="uq_window_samples_device_seq"),
    )
    with op.batch_alter_table("window_samples", schema=None) as batch_op:
        batch_op.create_index("ix_window_samples_device_ts", ["device_id", "ts"], unique=False)
        batch_op.create_index("ix_window_samples_org_model", ["org_id", "model_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("window_samples", schema=None) as batch_op:
        batch_op.drop_index("ix_window_samples_org_model")
        batch_op.drop_index("ix_window_samples_device_ts")
    op.drop_table("window_samples")
