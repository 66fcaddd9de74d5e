"""notifications: channels, rules, the outbox of alarm transitions and its deliveries, Web Push

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-14

Issue 21. Self-contained: new tables only, nothing of the tables before changes (a later partitioning
migration may rework events and telemetry without touching these). `notify_transitions` is written
in the same transaction as the alarm change it announces; the notification worker turns each row
into `notify_deliveries` and sends them (`server/notify/`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from edgefleet.server.db.types import UtcDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = UtcDateTime()


def upgrade() -> None:
    op.create_table(
        "notify_ack_link_uses",
        sa.Column("token_id", sa.String(length=64), nullable=False),
        sa.Column("alarm_id", _ID, nullable=False),
        sa.Column("expires_at", _UTC, nullable=False),
        sa.Column("used_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("token_id", name=op.f("pk_notify_ack_link_uses")),
    )
    op.create_index(
        op.f("ix_notify_ack_link_uses_expires_at"), "notify_ack_link_uses", ["expires_at"], unique=False
    )
    op.create_table(
        "notify_server_keys",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("public_key", sa.String(length=128), nullable=False),
        sa.Column("private_key_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_notify_server_keys")),
    )
    op.create_table(
        "notify_channels",
        sa.Column("id", _ID, nullable=False),
        sa.Column("org_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("secrets_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("last_success_at", _UTC, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", _UTC, nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_notify_channels_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_channels")),
    )
    op.create_index(op.f("ix_notify_channels_org_id"), "notify_channels", ["org_id"], unique=False)
    op.create_table(
        "notify_rules",
        sa.Column("id", _ID, nullable=False),
        sa.Column("org_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("min_severity", sa.String(length=16), nullable=False),
        sa.Column("device_ids", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("model_ids", sa.JSON(), nullable=False),
        sa.Column("channel_ids", sa.JSON(), nullable=False),
        sa.Column("notify_cleared", sa.Boolean(), nullable=False),
        sa.Column("quiet_start", sa.String(length=5), nullable=True),
        sa.Column("quiet_end", sa.String(length=5), nullable=True),
        sa.Column("quiet_timezone", sa.String(length=64), nullable=False),
        sa.Column("quiet_bypass_severity", sa.String(length=16), nullable=True),
        sa.Column("escalate_after_s", sa.Integer(), nullable=True),
        sa.Column("escalate_channel_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_notify_rules_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_rules")),
    )
    op.create_index(op.f("ix_notify_rules_org_id"), "notify_rules", ["org_id"], unique=False)
    op.create_table(
        "notify_push_subscriptions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("org_id", _ID, nullable=False),
        sa.Column("endpoint", sa.String(length=1024), nullable=False),
        sa.Column("p256dh", sa.String(length=128), nullable=False),
        sa.Column("auth", sa.String(length=64), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_notify_push_subscriptions_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notify_push_subscriptions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_push_subscriptions")),
        sa.UniqueConstraint("endpoint", name=op.f("uq_notify_push_subscriptions_endpoint")),
    )
    op.create_index(
        op.f("ix_notify_push_subscriptions_org_id"), "notify_push_subscriptions", ["org_id"], unique=False
    )
    op.create_index(
        op.f("ix_notify_push_subscriptions_user_id"), "notify_push_subscriptions", ["user_id"], unique=False
    )
    op.create_table(
        "notify_seen",
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("last_transition_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notify_seen_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notify_seen")),
    )
    op.create_table(
        "notify_transitions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("org_id", _ID, nullable=False),
        sa.Column("alarm_id", _ID, nullable=True),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("escalation", _ID, nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("routed_at", _UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["alarm_id"],
            ["alarms.id"],
            name=op.f("fk_notify_transitions_alarm_id_alarms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_notify_transitions_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_transitions")),
        sa.UniqueConstraint("alarm_id", "change", "escalation", name="uq_notify_transitions_alarm_change"),
        sa.UniqueConstraint("uid", name=op.f("uq_notify_transitions_uid")),
    )
    op.create_index("ix_notify_transitions_org", "notify_transitions", ["org_id", "id"], unique=False)
    op.create_index("ix_notify_transitions_routed_at", "notify_transitions", ["routed_at"], unique=False)
    op.create_table(
        "notify_deliveries",
        sa.Column("id", _ID, nullable=False),
        sa.Column("org_id", _ID, nullable=False),
        sa.Column("transition_id", _ID, nullable=False),
        sa.Column("channel_id", _ID, nullable=False),
        sa.Column("rule_id", _ID, nullable=True),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _UTC, nullable=False),
        sa.Column("lease_until", _UTC, nullable=True),
        sa.Column("sent_at", _UTC, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["notify_channels.id"],
            name=op.f("fk_notify_deliveries_channel_id_notify_channels"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_notify_deliveries_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["notify_rules.id"],
            name=op.f("fk_notify_deliveries_rule_id_notify_rules"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["transition_id"],
            ["notify_transitions.id"],
            name=op.f("fk_notify_deliveries_transition_id_notify_transitions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_deliveries")),
        sa.UniqueConstraint("transition_id", "channel_id", "recipient", name="uq_notify_deliveries_target"),
    )
    op.create_index("ix_notify_deliveries_channel", "notify_deliveries", ["channel_id", "id"], unique=False)
    op.create_index(
        "ix_notify_deliveries_due", "notify_deliveries", ["status", "next_attempt_at"], unique=False
    )
    op.create_index(op.f("ix_notify_deliveries_org_id"), "notify_deliveries", ["org_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_notify_deliveries_org_id"), table_name="notify_deliveries")
    op.drop_index("ix_notify_deliveries_due", table_name="notify_deliveries")
    op.drop_index("ix_notify_deliveries_channel", table_name="notify_deliveries")
    op.drop_table("notify_deliveries")
    op.drop_index("ix_notify_transitions_routed_at", table_name="notify_transitions")
    op.drop_index("ix_notify_transitions_org", table_name="notify_transitions")
    op.drop_table("notify_transitions")
    op.drop_table("notify_seen")
    op.drop_index(op.f("ix_notify_push_subscriptions_user_id"), table_name="notify_push_subscriptions")
    op.drop_index(op.f("ix_notify_push_subscriptions_org_id"), table_name="notify_push_subscriptions")
    op.drop_table("notify_push_subscriptions")
    op.drop_index(op.f("ix_notify_rules_org_id"), table_name="notify_rules")
    op.drop_table("notify_rules")
    op.drop_index(op.f("ix_notify_channels_org_id"), table_name="notify_channels")
    op.drop_table("notify_channels")
    op.drop_table("notify_server_keys")
    op.drop_index(op.f("ix_notify_ack_link_uses_expires_at"), table_name="notify_ack_link_uses")
    op.drop_table("notify_ack_link_uses")
