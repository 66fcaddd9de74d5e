"""model registry: signing keys, model packages, defaults per device kind

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import edgefleet.server.db.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = edgefleet.server.db.types.UtcDateTime(timezone=True)
# Server defaults only so that NOT NULL columns can be added to a table that has rows.
_NEW_STRINGS = (
    ("device_kind", 16),
    ("task", 32),
    ("signature", 128),
    ("key_id", 16),
    ("card_sha256", 64),
    ("min_runtime_version", 32),
)


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("id", _ID, nullable=False),
        sa.Column("org_id", _ID, nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("private_key_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_signing_keys_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_keys")),
        sa.UniqueConstraint("org_id", name=op.f("uq_signing_keys_org_id")),
    )
    with op.batch_alter_table("models", schema=None) as batch_op:
        for name, length in _NEW_STRINGS:
            batch_op.add_column(sa.Column(name, sa.String(length=length), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("metrics", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("lineage", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("report", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("self_test", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("uploaded_by", _ID, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_models_uploaded_by_users"), "users", ["uploaded_by"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_index("ix_models_org_kind", ["org_id", "device_kind"], unique=False)

    op.create_table(
        "model_packages",
        sa.Column("model_pk", _ID, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_pk"], ["models.id"], name=op.f("fk_model_packages_model_pk_models"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("model_pk", name=op.f("pk_model_packages")),
    )
    op.create_table(
        "model_defaults",
        sa.Column("org_id", _ID, nullable=False),
        sa.Column("device_kind", sa.String(length=16), nullable=False),
        sa.Column("model_pk", _ID, nullable=False),
        sa.Column("set_at", _UTC, nullable=False),
        sa.Column("set_by", _ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_model_defaults_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_pk"], ["models.id"], name=op.f("fk_model_defaults_model_pk_models"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["set_by"], ["users.id"], name=op.f("fk_model_defaults_set_by_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("org_id", "device_kind", name=op.f("pk_model_defaults")),
    )
    with op.batch_alter_table("model_defaults", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_defaults_model_pk"), ["model_pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("model_defaults", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_defaults_model_pk"))
    op.drop_table("model_defaults")
    op.drop_table("model_packages")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_index("ix_models_org_kind")
        batch_op.drop_constraint(batch_op.f("fk_models_uploaded_by_users"), type_="foreignkey")
        for name in ("uploaded_by", "self_test", "report", "lineage", "metrics"):
            batch_op.drop_column(name)
        for name, _length in reversed(_NEW_STRINGS):
            batch_op.drop_column(name)
    op.drop_table("signing_keys")
