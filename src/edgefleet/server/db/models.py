"""SQLAlchemy 2 models. Alembic migrations in `migrations/versions` must match these."""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from edgefleet.contracts import utc_now
from edgefleet.server.db.types import BigId, UtcDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON()}  # noqa: RUF012


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    event_retention_days: Mapped[int] = mapped_column(Integer, default=365)
    telemetry_retention_days: Mapped[int] = mapped_column(Integer, default=30)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Invite(Base):
    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    claim_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    claim_expires_at: Mapped[datetime | None]
    secret_hash: Mapped[str | None] = mapped_column(String(256))
    """Mosquitto `$7$` PBKDF2-SHA512 form, so the same hash serves both brokers."""
    claimed_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen: Mapped[datetime | None]
    mode: Mapped[str | None] = mapped_column(String(32))
    firmware_version: Mapped[str | None] = mapped_column(String(32))
    model_id: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(32))
    ota_state: Mapped[str | None] = mapped_column(String(16))
    last_notified_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("device_id", "seq", name="uq_events_device_seq"),
        Index("ix_events_device_ts", "device_id", "ts"),
        Index("ix_events_org_ts", "org_id", "ts"),
        Index("ix_events_org_kind_ts", "org_id", "kind", "ts"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigId)
    ts: Mapped[datetime]
    received_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean)
    severity: Mapped[str] = mapped_column(String(16))
    score: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    model_id: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    person_count: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """window, features and thumbnail, as sent."""
    alarm_id: Mapped[int | None] = mapped_column(BigId, index=True)


class TelemetryRow(Base):
    __tablename__ = "telemetry"
    __table_args__ = (
        UniqueConstraint("device_id", "seq", name="uq_telemetry_device_seq"),
        Index("ix_telemetry_device_ts", "device_id", "ts"),
        Index("ix_telemetry_org_ts", "org_id", "ts"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigId)
    ts: Mapped[datetime]
    received_at: Mapped[datetime]
    mode: Mapped[str] = mapped_column(String(32))
    uptime_s: Mapped[float] = mapped_column(Float)
    interval_s: Mapped[float] = mapped_column(Float)
    windows: Mapped[int] = mapped_column(BigId)
    anomaly_rate: Mapped[float | None] = mapped_column(Float)
    score_p50: Mapped[float | None] = mapped_column(Float)
    score_p95: Mapped[float | None] = mapped_column(Float)
    score_max: Mapped[float | None] = mapped_column(Float)
    inference_us: Mapped[float | None] = mapped_column(Float)
    detections_per_hour: Mapped[float | None] = mapped_column(Float)
    drift: Mapped[float | None] = mapped_column(Float)
    outbox_depth: Mapped[int] = mapped_column(BigId)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class TelemetryHourly(Base):
    """Per-device hourly rollup, kept after the raw rows expire."""

    __tablename__ = "telemetry_hourly"
    __table_args__ = (Index("ix_telemetry_hourly_org_hour", "org_id", "hour"),)

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    samples: Mapped[int] = mapped_column(Integer)
    windows: Mapped[int] = mapped_column(BigId)
    anomalous_windows: Mapped[float] = mapped_column(Float)
    """Sum of anomaly_rate x windows, so the hour's rate is anomalous_windows / windows."""
    score_max: Mapped[float | None] = mapped_column(Float)
    inference_us_sum: Mapped[float] = mapped_column(Float)
    inference_samples: Mapped[int] = mapped_column(Integer)
    detections_per_hour_max: Mapped[float | None] = mapped_column(Float)


class Alarm(Base):
    __tablename__ = "alarms"
    __table_args__ = (
        # At most one open alarm per device and kind.
        Index(
            "uq_alarms_open_device_kind",
            "device_id",
            "kind",
            unique=True,
            sqlite_where=text("cleared_at IS NULL"),
            postgresql_where=text("cleared_at IS NULL"),
        ),
        Index("ix_alarms_org_opened", "org_id", "opened_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    opened_at: Mapped[datetime]
    last_event_at: Mapped[datetime]
    event_count: Mapped[int] = mapped_column(Integer, default=1)
    normal_since: Mapped[datetime | None]
    acked_at: Mapped[datetime | None]
    acked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    cleared_at: Mapped[datetime | None]
    cleared_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    clear_reason: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    """The latest note of whoever acknowledged or cleared it (every note is in the audit log)."""


class ModelRow(Base):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("org_id", "model_id", "version", name="uq_models_org_model_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigId)
    card: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_org_created", "org_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


# --- model registry (issue 8): signing keys and model packages ----------------------------------


# --- rollouts (issue 8) --------------------------------------------------------------------------


# --- window samples (issue 8): raw windows uploaded for retraining ------------------------------


# --- drift (issue 8) -----------------------------------------------------------------------------
