"""Channel settings per kind, and which of them are secrets (stored sealed, never returned)."""

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
)

from edgefleet.server.errors import ServerError

ChannelKind = Literal["email", "apprise", "webhook", "webpush", "mqtt"]
CHANNEL_KINDS: tuple[str, ...] = ("email", "apprise", "webhook", "webpush", "mqtt")
Host = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\[\]_-]+$")]
Address = Annotated[
    str,
    StringConstraints(
        pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$", max_length=254, strip_whitespace=True
    ),
]
TopicPart = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_./-]+$")]


class ChannelConfigError(ServerError):
    """Channel settings that do not fit the channel's kind (the API answers 422)."""


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmailConfig(_Config):
    host: Host
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    """`starttls` (port 587), `tls` (implicit TLS, port 465) or `none` (a relay on a trusted network)."""
    username: Annotated[str, StringConstraints(max_length=254)] | None = None
    password: SecretStr | None = None
    sender: Address
    to: list[Address] = Field(min_length=1, max_length=20)


class AppriseConfig(_Config):
    urls: list[SecretStr] = Field(min_length=1, max_length=10)
    """Apprise URLs (`ntfy://`, `slack://`, `tgram://`, `json://` ...); they hold tokens, so secret."""

    @field_validator("urls")
    @classmethod
    def _known_services(cls, urls: list[SecretStr]) -> list[SecretStr]:
        import apprise

        from edgefleet.server.notify.channels.base import silence

        silence("apprise")  # it logs the URLs it loads
        for number, url in enumerate(urls, 1):
            if apprise.Apprise.instantiate(url.get_secret_value()) is None:
                raise ValueError(f"URL {number} is not an Apprise URL this server supports")
        return urls


class WebhookConfig(_Config):
    url: Annotated[str, StringConstraints(max_length=2048)]
    secret: SecretStr | None = None
    """The HMAC-SHA256 key of the signature header; generated (and shown once) when not given."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return url


class WebPushConfig(_Config):
    """Every browser of the organization's users that enabled push in the dashboard's bell."""


class MqttConfig(_Config):
    url: Annotated[str, StringConstraints(max_length=512)]
    username: Annotated[str, StringConstraints(max_length=128)] | None = None
    password: SecretStr | None = None
    topic_prefix: TopicPart = "edgefleet"
    ha_discovery: bool = True
    """Publish Home Assistant MQTT discovery for each device (score sensor, alarm binary sensors)."""
    discovery_prefix: TopicPart = "homeassistant"

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("must be an mqtt:// or mqtts:// URL")
        return url

    @field_validator("topic_prefix", "discovery_prefix")
    @classmethod
    def _no_empty_levels(cls, prefix: str) -> str:
        if re.search(r"(^/|/$|//)", prefix):
            raise ValueError("topic levels must not be empty")
        return prefix


ChannelConfig = EmailConfig | AppriseConfig | WebhookConfig | WebPushConfig | MqttConfig
MODELS: dict[str, type[ChannelConfig]] = {
    "email": EmailConfig,
    "apprise": AppriseConfig,
    "webhook": WebhookConfig,
    "webpush": WebPushConfig,
    "mqtt": MqttConfig,
}
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("password",),
    "apprise": ("urls",),
    "webhook": ("secret", "url"),  # incoming-webhook URLs (Slack, Teams, Discord, HA) hold a token
    "webpush": (),
    "mqtt": ("password",),
}


def parse(kind: str, values: dict[str, Any]) -> ChannelConfig:
    """Validate `values` for a channel of `kind`; ChannelConfigError says what is wrong."""
    if kind not in MODELS:
        raise ChannelConfigError(f"unknown channel kind {kind!r}; one of {', '.join(CHANNEL_KINDS)}")
    try:
        return MODELS[kind].model_validate(values)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ChannelConfigError(f"{kind} channel: {where}: {first['msg']}") from err


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def split(kind: str, config: ChannelConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public settings, secret settings) as plain JSON values."""
    secret_names = SECRET_FIELDS[kind]
    values = {name: _plain(getattr(config, name)) for name in type(config).model_fields}
    public = {k: v for k, v in values.items() if k not in secret_names}
    secrets = {k: v for k, v in values.items() if k in secret_names and v is not None}
    return public, secrets


def merged(
    kind: str, public: dict[str, Any], secrets: dict[str, Any], update: dict[str, Any]
) -> ChannelConfig:
    """The stored settings with `update` applied: a secret left out of `update` is kept."""
    return parse(kind, {**public, **secrets, **update})


def shown_url(url: str) -> str:
    """What may be shown of a secret URL: its scheme, host and port."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}/…"


def shown(kind: str, secrets: dict[str, Any]) -> dict[str, Any]:
    """Public hints of secret settings (a webhook's scheme and host); the sealed values override them."""
    return {"url": shown_url(secrets["url"])} if kind == "webhook" and "url" in secrets else {}


def public_part(stored: dict[str, Any]) -> dict[str, Any]:
    """A channel's stored settings without `_set` (the names of the secrets that are set)."""
    return {k: v for k, v in stored.items() if k != "_set"}
