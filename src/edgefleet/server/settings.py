"""Settings of the server process: one class, environment prefix `EDGEFLEET_`."""

from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from edgefleet.server.errors import ConfigError

DEFAULT_SECRET = "change-me-edgefleet-demo-secret"
DEFAULT_INGEST_PASSWORD = "change-me-ingest"
EMBEDDED = "embedded"


class ServerSettings(BaseSettings):
    """Everything the server reads from the environment (EDGEFLEET_<FIELD>) or arguments."""

    model_config = SettingsConfigDict(env_prefix="EDGEFLEET_", extra="ignore", validate_default=True)

    demo: bool = False
    """Demo mode allows the built-in default secrets; never use it on a network."""
    db_url: str = "sqlite:///edgefleet.db"
    """SQLAlchemy URL: sqlite:///path.db (WAL) or postgresql+psycopg://user@host/db."""
    broker: str = EMBEDDED
    """`embedded` (amqtt in this process), `mqtt://host:port` or `mqtts://host:port`, or `none`."""
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    """Signs session tokens. At least 32 characters outside demo mode."""
    jwt_ttl_s: int = Field(default=12 * 3600, gt=0)
    cookie_name: str = "edgefleet_session"
    cookie_secure: bool = False
    """Set on HTTPS deployments so browsers send the session cookie over TLS only."""
    claim_token_ttl_s: int = Field(default=24 * 3600, gt=0)
    invite_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)

    login_max_failures_per_account: int = Field(default=5, gt=0)
    login_max_failures_per_address: int = Field(default=20, gt=0)
    login_window_s: float = Field(default=300.0, gt=0)

    # MQTT
    ingest_username: str = "edgefleet-ingest"
    ingest_password: SecretStr = SecretStr(DEFAULT_INGEST_PASSWORD)
    ingest_client_id: str = "edgefleet-ingest-1"
    ingest_group: str = "edgefleet-ingest"
    """Shared-subscription group: ingest workers in one group split the device topics."""
    ingest_shared: bool = True
    ingest_batch_size: int = Field(default=500, gt=0)
    ingest_flush_ms: float = Field(default=2.0, ge=0)
    ingest_queue_max: int = Field(default=20_000, gt=0)
    device_broker_url: str | None = None
    """The broker URL handed to devices when they claim (default: the URL the server connects to)."""
    mqtt_ca_file: str | None = None
    """CA certificate for `mqtts://` brokers (None: the system store)."""
    embedded_host: str = "127.0.0.1"
    embedded_port: int = 1883
    mosquitto_password_file: str | None = None
    """When set, device credentials are written here (Mosquitto password-file format)."""
    mosquitto_acl_file: str | None = None
    mosquitto_pid_file: str | None = None
    """Mosquitto's pid file; the server sends SIGHUP after rewriting the files."""

    # Alarms
    alarm_clear_after_s: float = Field(default=300.0, ge=0)
    """An alarm clears itself after the device has reported normal this long."""
    alarm_notify_cooldown_s: float = Field(default=600.0, ge=0)
    alarm_check_interval_s: float = Field(default=5.0, gt=0)
    retention_interval_s: float = Field(default=3600.0, gt=0)
    """How often raw events/telemetry older than the organization's retention are deleted."""
    sample_keep_per_device: int = Field(default=200, ge=1)
    """Sampled raw windows (channel `sample`, for retraining) kept per device; older ones are deleted."""

    # Drift (server side, from telemetry; see services/drift.py)
    drift_limit: float = Field(default=1.5, gt=0)
    """The device's drift statistic (standardized feature shift, in σ) above this is out of limit."""
    drift_score_ratio_limit: float = Field(default=3.0, gt=1)
    """Device score p95 over the model card's score p95 above this is out of limit."""
    drift_consecutive: int = Field(default=3, ge=1)
    """Out-of-limit telemetry intervals in a row (same model version) that open a drift alarm."""

    # Rollouts
    rollout_interval_s: float = Field(default=2.0, gt=0)
    """How often the rollout engine sends commands, checks health gates and timeouts."""
    rollout_anomaly_margin: float = Field(default=0.1, ge=0, le=1)
    """A device is unhealthy when its anomaly rate after an update exceeds its baseline by more."""
    rollout_reject_margin: float = Field(default=0.05, ge=0, le=1)
    """... or its rejected readings per window exceed its baseline by more."""
    rollout_baseline_samples: int = Field(default=20, gt=0)
    """Telemetry reports before the update that make a device's baseline."""

    metrics_token: SecretStr | None = None
    """Prometheus scrape token: `Authorization: Bearer <it>` reads /metrics (so do admins and owners)."""

    stream_buffer: int = Field(default=10_000, gt=0)
    """Messages the real-time hub keeps so a reconnecting client can resume."""
    allow_signup: bool = True
    """Anyone may create an organization (off: owners invite users, admins use the CLI)."""
    public_url: str = "http://127.0.0.1:8000"
    """The server's URL as devices reach it; model manifests point their downloads here.
    `edgefleet server` sets it from --host/--port unless EDGEFLEET_PUBLIC_URL is given."""

    @property
    def broker_mode(self) -> Literal["embedded", "external", "none"]:
        if self.broker == EMBEDDED:
            return "embedded"
        if self.broker == "none":
            return "none"
        return "external"

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.broker not in (EMBEDDED, "none") and urlsplit(self.broker).scheme not in ("mqtt", "mqtts"):
            raise ValueError(
                f"broker must be 'embedded', 'none' or an mqtt:// / mqtts:// URL, not {self.broker!r}"
            )
        if urlsplit(self.public_url).scheme not in ("http", "https") or not urlsplit(self.public_url).netloc:
            raise ValueError(f"public_url must be an http:// or https:// URL, not {self.public_url!r}")
        if not self.db_url.startswith(("sqlite", "postgresql")):
            raise ValueError(
                f"db_url must be a sqlite:// or postgresql:// SQLAlchemy URL, not {self.db_url!r}"
            )
        return self

    def require_safe(self) -> None:
        """Refuse default or weak secrets outside demo mode (called when the app starts)."""
        if self.demo:
            return
        secret = self.secret_key.get_secret_value()
        if secret == DEFAULT_SECRET or len(secret) < 32:
            raise ConfigError(
                "EDGEFLEET_SECRET_KEY is the default or shorter than 32 characters; set a random one "
                "(python -c 'import secrets; print(secrets.token_urlsafe(48))') or use demo mode"
            )
        if self.broker_mode != "none" and self.ingest_password.get_secret_value() == DEFAULT_INGEST_PASSWORD:
            raise ConfigError("EDGEFLEET_INGEST_PASSWORD is the default; set a random one or use demo mode")
