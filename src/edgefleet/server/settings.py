"""Settings of the server process: one class, environment prefix `EDGEFLEET_`."""

import ipaddress
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

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
    """Signs session tokens and seals the organizations' signing keys. About 128 bits or more (random,
    e.g. `secrets.token_urlsafe(48)`); the default only in demo mode on loopback."""
    jwt_ttl_s: int = Field(default=12 * 3600, gt=0)
    cookie_name: str = "edgefleet_session"
    cookie_secure: bool | None = None
    """The session cookie's `Secure` flag (sent over TLS only). Unset: on when `public_url` is https or
    the request came over TLS (directly, or `X-Forwarded-Proto` from a trusted proxy); true/false force it."""
    trusted_origins: list[str] = Field(default_factory=list)
    """Origins (`https://host[:port]`) besides the request's own and `public_url`'s from which a browser
    may post to this server with its session cookie (sign-in forms, logout, cookie-authenticated
    changes); everything else is refused as cross-site request forgery."""
    claim_token_ttl_s: int = Field(default=24 * 3600, gt=0)
    invite_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)

    # Sign-in and sign-up rate limits (server/ratelimit.py): `limits` strings, several windows with ";"
    login_limits: str = "5/5 minutes;20/hour;100/day"
    """Attempts per account and client address, taken before the password is checked; a success
    clears them."""
    login_limits_per_address: str = "20/5 minutes;200/day"
    """Failed sign-ins per client address, over all accounts."""
    login_limits_per_account: str = "20/5 minutes;200/day"
    """Attempts per account from addresses that have not signed in to it in the last 30 days."""
    signup_limits: str = "10/hour;50/day"
    """Sign-ups per client address."""
    ratelimit_url: str | None = None
    """`redis://host:6379/0`: limits shared by every server process. Unset: in this process's memory."""
    ratelimit_prefix: str = "edgefleet"
    """Key prefix in the limiter's storage (servers sharing a Redis and a database share it)."""
    ratelimit_memory_max_keys: int = Field(default=100_000, ge=100)
    """Keys the in-memory limiter keeps at most (about 1 KB each); the nearest to expiry go first."""
    trusted_proxies: list[str] = Field(default_factory=list)
    """Addresses or networks (`10.0.0.0/8`) of reverse proxies in front of this server: only from these
    does `X-Forwarded-For` name the client (rate limits) and `X-Forwarded-Proto` the scheme. None by
    default."""

    # MQTT
    ingest_username: str = "edgefleet-ingest"
    """The ingest's MQTT username. On Mosquitto (`use_username_as_clientid`, BROKER_SETTINGS) it is also
    the ingest's client id and session: each ingest worker sharing a broker needs its own."""
    ingest_usernames: list[str] = Field(default_factory=list)
    """Every ingest worker's username on this broker, for the generated Mosquitto password and ACL files
    (the process that writes them must know all); default: [INGEST_USERNAME]. Device ids cannot be any
    of them, nor start with `edgefleet-ingest`."""
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

    # Notifications (server/notify, docs/notifications.md)
    notify_worker: bool = True
    """Run the notification sender in this process (off: a separate `python -m edgefleet.server.notify`)."""
    notify_interval_s: float = Field(default=1.0, gt=0)
    """How often the sender looks for new alarm transitions and due deliveries."""
    notify_send_timeout_s: float = Field(default=20.0, gt=0)
    notify_lease_s: float = Field(default=60.0, gt=0)
    """A delivery being sent is sent again after this if its worker died (must exceed twice the send
    timeout: a send may take longer than one timeout, e.g. connect plus reply)."""
    notify_retry_base_s: float = Field(default=5.0, gt=0)
    """First retry after a failure; doubling per attempt up to `notify_retry_max_s`."""
    notify_retry_max_s: float = Field(default=3600.0, gt=0)
    notify_max_attempts: int = Field(default=12, ge=1)
    notify_ack_link_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)
    """How long the acknowledge link in a notification stays valid."""
    notify_ca_file: str | None = None
    """Extra CA certificates (PEM) trusted for outgoing TLS: SMTP, webhooks, northbound MQTT."""
    notify_state_interval_s: float = Field(default=10.0, gt=0)
    """How often device states are republished to northbound MQTT channels (when they changed)."""
    notify_push_allow_loopback: bool = False
    """Accept Web Push endpoints on loopback (a stand-in push service in tests); other non-public
    addresses are always refused."""
    vapid_subject: str | None = None
    """Web Push contact (`mailto:ops@example.com` or an https URL); default: the public URL."""
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
    """Prometheus scrape token: `Authorization: Bearer <it>` reads /metrics."""
    operator_organization: int | None = None
    """The organization (id) that runs this server: its admins and owners also read /metrics, whose
    figures cover every tenant. Unset: only the scrape token does."""

    stream_buffer: int = Field(default=10_000, gt=0)
    """Messages the real-time hub keeps so a reconnecting client can resume."""
    allow_signup: bool = False
    """Anyone may create an organization and become its owner. Unset: on in demo mode only; otherwise
    owners invite users and the operator creates organizations (`edgefleet server user create`)."""
    secrets_file: str | None = None
    """Where `edgefleet server` keeps the secrets it generates when EDGEFLEET_SECRET_KEY or
    EDGEFLEET_INGEST_PASSWORD is not given (mode 0600). Default: beside the SQLite database
    (`<database>.secrets.json`), or `edgefleet-secrets.json` in the working directory for PostgreSQL."""
    # Scale-out (docs/scaling.md): process roles and the state they share
    role: Literal["all", "api", "ingest", "worker"] = "all"
    """`all`: one process does everything (the embedded default). `api`: REST, WebSocket, dashboard;
    `ingest`: MQTT shared-subscription worker; `worker`: rollouts, retention, alarm clearing,
    partitions, with one active copy (leader election on PostgreSQL). Split roles need PostgreSQL,
    an external broker and REDIS_URL."""
    redis_url: str | None = None
    """`redis://host:6379/0`: live stream fan-out and its resume buffer shared by every API process,
    cache invalidation, and the rate limiter (unless RATELIMIT_URL names another). Unset: in-process."""
    redis_prefix: str = "edgefleet"
    """Key prefix of the stream and invalidation channel in Redis (installations sharing a Redis differ)."""
    leader_poll_s: float = Field(default=2.0, gt=0)
    """A standby worker tries to take the leadership this often; the leader checks its lock as often."""
    partition_ahead_days: int = Field(default=7, ge=1)
    """PostgreSQL: days of event/telemetry partitions the worker keeps created ahead of today."""
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
        if self.notify_lease_s <= 2 * self.notify_send_timeout_s:
            raise ValueError(
                f"notify_lease_s ({self.notify_lease_s:g}) must exceed twice notify_send_timeout_s "
                f"({self.notify_send_timeout_s:g}): a lease lapsing mid-send lets another worker send again"
            )
        self._check_limits()
        self._check_role()
        if "allow_signup" not in self.model_fields_set:
            self.allow_signup = self.demo
        return self

    def _check_limits(self) -> None:
        from limits import parse_many

        for name in ("login_limits", "login_limits_per_address", "login_limits_per_account", "signup_limits"):
            try:
                parse_many(getattr(self, name))
            except ValueError as err:
                raise ValueError(
                    f"{name} must be like '5/5 minutes;20/hour', not {getattr(self, name)!r}"
                ) from err
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError as err:
                raise ValueError(f"trusted_proxies: {proxy!r} is not an address or network") from err
        if self.ratelimit_url and urlsplit(self.ratelimit_url).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"ratelimit_url must be a redis:// URL, not {self.ratelimit_url!r}")

    def _check_role(self) -> None:
        if self.redis_url and urlsplit(self.redis_url).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"redis_url must be a redis:// URL, not {self.redis_url!r}")
        if self.role == "all":
            return
        problems = []
        if not self.db_url.startswith("postgresql"):
            problems.append("a PostgreSQL db_url (processes share the database)")
        if self.broker == EMBEDDED:
            problems.append("an external broker (mqtt://...; the embedded one lives in one process)")
        if not self.redis_url:
            problems.append("redis_url (the live stream crosses processes through Redis)")
        if problems:
            raise ValueError(f"role {self.role!r} needs " + "; ".join(problems))

    @property
    def limiter_storage_url(self) -> str | None:
        """The rate limiter's storage: RATELIMIT_URL, else REDIS_URL, else memory (None)."""
        return self.ratelimit_url or self.redis_url

    @property
    def mqtt_ingest_usernames(self) -> list[str]:
        """The ingest workers' MQTT usernames (`ingest_usernames`, or this server's own)."""
        names = self.ingest_usernames or [self.ingest_username]
        return list(dict.fromkeys([self.ingest_username, *names]))

    def reserved_device_id(self, device_id: str) -> bool:
        """A device id that would be an ingest worker's MQTT username (and so its rights and session)."""
        folded = device_id.lower()
        return folded.startswith("edgefleet-ingest") or folded in {
            name.lower() for name in self.mqtt_ingest_usernames
        }

    @property
    def generated_secrets_path(self) -> Path:
        """Where `edgefleet server` keeps generated secrets (see `secrets_file`)."""
        if self.secrets_file:
            return Path(self.secrets_file)
        url = make_url(self.db_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            database = Path(url.database)
            return database.with_name(database.name + ".secrets.json")
        return Path("edgefleet-secrets.json")

    def uvicorn_proxy_options(self) -> dict[str, Any]:
        """uvicorn's proxy-header options: `X-Forwarded-For`/`-Proto` from `trusted_proxies` only (uvicorn
        trusts 127.0.0.1 by default, which would let any local process pick its rate-limit address)."""
        if not self.trusted_proxies:
            return {"proxy_headers": False}
        return {"proxy_headers": True, "forwarded_allow_ips": list(self.trusted_proxies)}

    def loopback_only(self, http_host: str | None = None) -> bool:
        """Whether only this machine can reach the server: the HTTP bind address (when known) and the
        embedded broker's are loopback."""
        hosts = [http_host] if http_host is not None else []
        if self.broker_mode == "embedded":
            hosts.append(self.embedded_host)
        return all(_is_loopback(host) for host in hosts)

    def require_safe(self, http_host: str | None = None) -> None:
        """Refuse published or guessable secrets (when the app starts, and in `edgefleet server` with its
        bind address): the secret key and the ingest password need about 128 bits (`security.weak_secret`).
        Demo mode may use the built-in defaults only while nothing but this machine can reach it."""
        from edgefleet.server.security import weak_secret

        if self.demo and self.loopback_only(http_host):
            return
        known = (DEFAULT_SECRET, DEFAULT_INGEST_PASSWORD)
        problems = []
        if reason := weak_secret(self.secret_key.get_secret_value(), known):
            problems.append(f"EDGEFLEET_SECRET_KEY {reason}")
        if self.broker_mode != "none" and (
            reason := weak_secret(self.ingest_password.get_secret_value(), known)
        ):
            problems.append(f"EDGEFLEET_INGEST_PASSWORD {reason}")
        if problems:
            where = "demo mode off loopback" if self.demo else "outside demo mode"
            raise ConfigError(
                f"{'; '.join(problems)} ({where}). Set random ones "
                "(python -c 'import secrets; print(secrets.token_urlsafe(48))'), or leave them unset and "
                "`edgefleet server` generates them (kept 0600 beside the database)"
            )


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
