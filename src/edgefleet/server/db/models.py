"""SQLAlchemy 2 models. Alembic migrations in `migrations/versions` must match these."""

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine.default import DefaultExecutionContext
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


def received_day_of(received_at: datetime) -> date:
    """The UTC day a row was received: the partition key of events and telemetry on PostgreSQL."""
    return received_at.astimezone(UTC).date()


def _received_day(context: DefaultExecutionContext) -> date:
    parameters: dict[str, Any] = context.get_current_parameters()  # type: ignore[no-untyped-call]
    return received_day_of(parameters["received_at"])


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
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Carried in every session token; a password change increments it, ending older sessions."""
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
    tags: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    """Free labels (`line-3`, `pilot`) a rollout can target; added by migration 0004."""
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (
        # PostgreSQL partitions by `received_day` (migration 0011), and a unique key there must hold the
        # partition key; the ingest checks earlier days itself (ingest/pg_bulk.py)
        UniqueConstraint("device_id", "seq", name="uq_events_device_seq").ddl_if(dialect="sqlite"),
        UniqueConstraint("device_id", "seq", "received_day", name="uq_events_device_seq_day").ddl_if(
            dialect="postgresql"
        ),
        Index("ix_events_device_ts", "device_id", "ts"),
        Index("ix_events_org_ts", "org_id", "ts"),
        Index("ix_events_org_kind_ts", "org_id", "kind", "ts"),
        # retention deletes by the server's receive time; BRIN on PostgreSQL (rows arrive in that
        # order, so it costs the ingest next to nothing), a plain index on SQLite (migration 0008)
        Index("ix_events_received_at", "received_at", postgresql_using="brin"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigId)
    ts: Mapped[datetime]
    """The device's time: shown, compared, never trusted for retention or alarm timing."""
    received_at: Mapped[datetime]
    """The server's time of receipt: the authority (retention, alarm timing, ordering across devices)."""
    received_day: Mapped[date] = mapped_column(Date, default=_received_day)
    """`received_at`'s UTC day: the partition key on PostgreSQL (docs/scaling.md)."""
    clock_synced: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    """False when the device said its clock was not synchronized (`ts` is its own estimate)."""
    time_flag: Mapped[str | None] = mapped_column(String(8))
    """`future` (ts more than 5 min after receipt) or `past` (more than a day before); None: plausible."""
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
        UniqueConstraint("device_id", "seq", name="uq_telemetry_device_seq").ddl_if(dialect="sqlite"),
        UniqueConstraint("device_id", "seq", "received_day", name="uq_telemetry_device_seq_day").ddl_if(
            dialect="postgresql"
        ),
        Index("ix_telemetry_device_ts", "device_id", "ts"),
        Index("ix_telemetry_org_ts", "org_id", "ts"),
        Index("ix_telemetry_received_at", "received_at", postgresql_using="brin"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigId)
    ts: Mapped[datetime]
    received_at: Mapped[datetime]
    received_day: Mapped[date] = mapped_column(Date, default=_received_day)
    """As on events: the partition key on PostgreSQL."""
    clock_synced: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    time_flag: Mapped[str | None] = mapped_column(String(8))
    """As on events: `future`, `past` or None."""
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


class LeaderTerm(Base):
    """The fencing token of a leadership (`cluster/leader.py`): a new leader raises `term`; work the
    leader does checks its term in the same transaction, so a deposed leader's pass commits nothing."""

    __tablename__ = "leader_terms"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    term: Mapped[int] = mapped_column(BigId)
    holder: Mapped[str] = mapped_column(String(200))
    since: Mapped[datetime]


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
    """A registry entry: one signed model package (its bytes are in `model_packages`)."""

    __tablename__ = "models"
    __table_args__ = (
        UniqueConstraint("org_id", "model_id", "version", name="uq_models_org_model_version"),
        Index("ix_models_org_kind", "org_id", "device_kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    """Of the package bytes (what devices download and verify)."""
    size: Mapped[int] = mapped_column(BigId)
    card: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    device_kind: Mapped[str] = mapped_column(String(16))
    task: Mapped[str] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(String(128))
    """Ed25519 over the package bytes, base64."""
    key_id: Mapped[str] = mapped_column(String(16))
    card_sha256: Mapped[str] = mapped_column(String(64))
    min_runtime_version: Mapped[str] = mapped_column(String(32))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lineage: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """training_data_sha256, config_sha256, parent_model, framework."""
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    self_test: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """Up to 8 `contracts.SelfTestCase` dicts."""
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


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
class SigningKey(Base):
    """An organization's Ed25519 key; the private key is AES-GCM encrypted (see `server.signing`)."""

    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), unique=True)
    key_id: Mapped[str] = mapped_column(String(16))
    public_key: Mapped[str] = mapped_column(String(64))
    """base64 of the 32 raw public key bytes."""
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    """12-byte nonce + AES-256-GCM ciphertext of the 32 raw private key bytes."""
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class ModelPackage(Base):
    """The package bytes of a registry model, apart so that listing models stays light."""

    __tablename__ = "model_packages"

    model_pk: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ModelDefault(Base):
    """The default model of an organization for one device kind (at most one per kind)."""

    __tablename__ = "model_defaults"

    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    device_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    model_pk: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    set_at: Mapped[datetime] = mapped_column(default=utc_now)
    set_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


# --- rollouts (issue 8) --------------------------------------------------------------------------
class Rollout(Base):
    """A staged update of one registry model to a set of devices (see `server/rollout_engine.py`)."""

    __tablename__ = "rollouts"
    __table_args__ = (
        Index("ix_rollouts_org_created", "org_id", "created_at"),
        Index("ix_rollouts_state", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    model_pk: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    target: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Exactly one of {"device_kind": k}, {"tag": t}, {"device_ids": [...]}, as given."""
    stages: Mapped[list[int]] = mapped_column(JSON, default=list)
    """Cumulative percentages of the target, increasing, ending at 100."""
    gate_s: Mapped[float] = mapped_column(Float)
    device_timeout_s: Mapped[float] = mapped_column(Float)
    max_failures: Mapped[int] = mapped_column(Integer)
    auto_rollback: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(16))
    """running | paused | halted | aborted | completed"""
    stage: Mapped[int] = mapped_column(Integer, default=0)
    stage_started_at: Mapped[datetime | None]
    rollback: Mapped[bool] = mapped_column(Boolean, default=False)
    """Roll back the devices this rollout updated (halted with auto_rollback, or aborted with rollback)."""
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
    finished_at: Mapped[datetime | None]


class RolloutDevice(Base):
    """One device of a rollout: its stage, what was sent, what it reported, its health baseline."""

    __tablename__ = "rollout_devices"
    __table_args__ = (Index("ix_rollout_devices_device", "device_id"),)

    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"), primary_key=True)
    device_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer)
    """Place in the rollout's deterministic order (hash of rollout id and device id)."""
    stage: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    """pending | skipped | sent | DOWNLOADING .. UPDATED | healthy | failed | cancelled
    | rollback_sent | rolled_back"""
    reason: Mapped[str | None] = mapped_column(Text)
    updated: Mapped[bool] = mapped_column(Boolean, default=False)
    """The device reported UPDATED for this rollout (and has not rolled back since)."""
    failed: Mapped[bool] = mapped_column(Boolean, default=False)
    """Counted as a failure (FAILED, ROLLED_BACK by itself, unhealthy, timeout); `reason` says which."""
    command_id: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None]
    updated_at: Mapped[datetime | None]
    """When the device's latest OTA state for this rollout arrived (device time)."""
    updated_healthy_since: Mapped[datetime | None]
    """Engine time the gate started for this device (first step after it reported UPDATED)."""
    baseline: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Pre-rollout telemetry summary and the telemetry row id the gate looks after."""


# --- window samples (issue 8): raw windows uploaded for retraining ------------------------------
class WindowSampleRow(Base):
    """A normal raw window a device uploaded (`contracts.WindowSample`); the latest N per device."""

    __tablename__ = "window_samples"
    __table_args__ = (
        UniqueConstraint("device_id", "seq", name="uq_window_samples_device_seq"),
        Index("ix_window_samples_device_ts", "device_id", "ts"),
        Index("ix_window_samples_org_model", "org_id", "model_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(String(64), ForeignKey("devices.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigId)
    ts: Mapped[datetime]
    received_at: Mapped[datetime]
    device_kind: Mapped[str] = mapped_column(String(16))
    model_id: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(32))
    window_index: Mapped[int] = mapped_column(BigId)
    """The `window` field of the message (`window` is a reserved word in SQL)."""
    sample_rate_hz: Mapped[float] = mapped_column(Float)
    axes: Mapped[list[str]] = mapped_column(JSON)
    length: Mapped[int] = mapped_column(Integer)
    encoding: Mapped[str] = mapped_column(String(16))
    scale: Mapped[list[float]] = mapped_column(JSON)
    data: Mapped[str] = mapped_column(Text)
    """base64 of the int16 values, as sent."""
    score: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)


# --- drift (issue 8) -----------------------------------------------------------------------------
class DriftState(Base):
    """Per device: the latest drift verdict of its current model version (see `services/drift.py`)."""

    __tablename__ = "drift_state"
    __table_args__ = (Index("ix_drift_state_org", "org_id"),)

    device_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    model_id: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigId)
    """Of the latest telemetry judged (older ones arriving late are not judged)."""
    ts: Mapped[datetime]
    drift: Mapped[float | None] = mapped_column(Float)
    score_p50: Mapped[float | None] = mapped_column(Float)
    score_p95: Mapped[float | None] = mapped_column(Float)
    p95_ratio: Mapped[float | None] = mapped_column(Float)
    """Device score p95 / model card score p95 (None without a card or its score stats)."""
    out_of_limit: Mapped[bool] = mapped_column(Boolean)
    consecutive: Mapped[int] = mapped_column(Integer)
    """Out-of-limit intervals in a row on this model version."""
    reason: Mapped[str | None] = mapped_column(String(32))
    """drift | score_p95 | drift+score_p95: what was out of limit in the current or latest streak."""
    out_since: Mapped[datetime | None]


# --- session revocation (issue 18, finding 7) ------------------------------------------------------
class RevokedToken(Base):
    """A session token logged out before it expired, by its `jti`; kept until it would have expired."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime] = mapped_column(default=utc_now)


# --- notifications (issue 21; migration 0010; see `server/notify/`) ------------------------------
class NotifyChannel(Base):
    """Where notifications go: email, Apprise URLs, a webhook, Web Push, a northbound MQTT broker."""

    __tablename__ = "notify_channels"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The kind's settings without its secrets."""
    secrets_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The secret settings (passwords, tokens, URLs with tokens) as AES-GCM under the secret key."""
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class NotifyRule(Base):
    """Which alarms go to which channels; empty match lists match everything."""

    __tablename__ = "notify_rules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    kinds: Mapped[list[str]] = mapped_column(JSON, default=list)
    min_severity: Mapped[str] = mapped_column(String(16), default="info")
    device_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    model_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    channel_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    notify_cleared: Mapped[bool] = mapped_column(Boolean, default=True)
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    """`HH:MM` local time in `quiet_timezone`; with `quiet_end`, the quiet hours."""
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    quiet_timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    quiet_bypass_severity: Mapped[str | None] = mapped_column(String(16))
    """Alarms of this severity or higher are sent during quiet hours too (None: none are)."""
    escalate_after_s: Mapped[int | None] = mapped_column(Integer)
    escalate_channel_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class NotifyTransition(Base):
    """The outbox: one row per alarm transition, written in the alarm's own transaction."""

    __tablename__ = "notify_transitions"
    __table_args__ = (
        UniqueConstraint("alarm_id", "change", "escalation", name="uq_notify_transitions_alarm_change"),
        Index("ix_notify_transitions_org", "org_id", "id"),
        Index("ix_notify_transitions_routed_at", "routed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    """The notification's stable id (`efn_<uid>`): receivers deduplicate on it."""
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    alarm_id: Mapped[int | None] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"))
    """None for a test notification."""
    change: Mapped[str] = mapped_column(String(16))
    escalation: Mapped[int] = mapped_column(BigId, default=0)
    """0, or for `escalated` the rule whose escalation fired (one escalation per alarm and rule)."""
    severity: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    routed_at: Mapped[datetime | None]
    """When the worker turned it into deliveries (None: not yet)."""


class NotifyDelivery(Base):
    """One notification to one channel (and recipient): the delivery log the worker works through."""

    __tablename__ = "notify_deliveries"
    __table_args__ = (
        UniqueConstraint("transition_id", "channel_id", "recipient", name="uq_notify_deliveries_target"),
        Index("ix_notify_deliveries_due", "status", "next_attempt_at"),
        Index("ix_notify_deliveries_channel", "channel_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    transition_id: Mapped[int] = mapped_column(ForeignKey("notify_transitions.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("notify_channels.id", ondelete="CASCADE"))
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("notify_rules.id", ondelete="SET NULL"))
    recipient: Mapped[str] = mapped_column(String(64), default="")
    """Which of the channel's targets ("" for the whole channel, `url:2`, `push:17`)."""
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """pending | held (quiet hours) | sending | sent | failed | skipped."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utc_now)
    lease_until: Mapped[datetime | None]
    """While `sending`: after this a crashed worker's claim lapses and the delivery is sent again."""
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class PushSubscription(Base):
    """A browser's Web Push subscription for one user."""

    __tablename__ = "notify_push_subscriptions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(String(1024), unique=True)
    p256dh: Mapped[str] = mapped_column(String(128))
    auth: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class NotifyServerKey(Base):
    """Server-wide generated keys (the VAPID key of Web Push), private half sealed like signing keys."""

    __tablename__ = "notify_server_keys"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(128))
    private_key_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class AckLinkUse(Base):
    """A signed acknowledge link that was used (links are single-use); kept until it would expire."""

    __tablename__ = "notify_ack_link_uses"

    token_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    alarm_id: Mapped[int] = mapped_column(BigId)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime] = mapped_column(default=utc_now)


class NotifySeen(Base):
    """The newest notification a user has seen in the dashboard's bell."""

    __tablename__ = "notify_seen"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    last_transition_id: Mapped[int] = mapped_column(BigId, default=0)
