"""The embedded MQTT broker: amqtt in the server process, devices authenticated against the device
table and held to their own topics (per-device ACL). Anonymous access is off.

amqtt speaks MQTT 3.1.1, so the in-process ingest client uses a plain (not shared) persistent
subscription on it. amqtt keeps sessions in memory: queued messages survive an ingest reconnect, not
a restart of the server process (use Mosquitto for that).
"""

import asyncio
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session as MqttSession
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.contracts import COMMAND_CHANNELS, DEVICE_CHANNELS, TOPIC_PREFIX
from edgefleet.server import security
from edgefleet.server.db.models import Device
from edgefleet.server.errors import BrokerError

log = logging.getLogger(__name__)
_AUTHORITIES: dict[str, "DeviceAuthority"] = {}


def _matches(topic_filter: str, topic: str) -> bool:
    """MQTT wildcard match of `topic` (or of a subscription filter, literally) against `topic_filter`."""
    pattern, parts = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(pattern):
        if level == "#":
            return True
        if i >= len(parts) or (level != "+" and level != parts[i]):
            return False
    return len(parts) == len(pattern)


class DeviceAuthority:
    """Decides who may connect and which topics they may use."""

    def __init__(self, sessions: sessionmaker[Session], ingest_username: str, ingest_password: str) -> None:
        self._sessions = sessions
        self._ingest_username = ingest_username
        self._ingest_password = ingest_password

    def authenticate(self, username: str | None, password: str | None, client_id: str | None) -> bool:
        if not username or password is None:
            return False
        if username == self._ingest_username:
            return hmac.compare_digest(password.encode(), self._ingest_password.encode())
        if client_id != username:  # a device connects with its id as client id: no session takeover
            return False
        with self._sessions() as session:
            row = session.execute(
                select(Device.secret_hash, Device.revoked_at).where(Device.id == username)
            ).first()
        return (
            row is not None
            and row.revoked_at is None
            and security.verify_device_secret(row.secret_hash, password)
        )

    def allowed(self, username: str | None, topic: str, action: Action) -> bool:
        if username is None:
            return False
        if username == self._ingest_username:
            if action == Action.PUBLISH:
                return any(_matches(f"{TOPIC_PREFIX}/+/{c.value}", topic) for c in COMMAND_CHANNELS)
            return topic.startswith(f"{TOPIC_PREFIX}/")
        own = f"{TOPIC_PREFIX}/{username}/"
        if action == Action.PUBLISH:
            return any(topic == own + c.value for c in DEVICE_CHANNELS)
        # subscribe and receive: only its own command topics
        return any(topic == own + c.value for c in COMMAND_CHANNELS)


def _authority(config: Any) -> DeviceAuthority:
    return _AUTHORITIES[config.authority]


class DeviceAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    @dataclass
    class Config:
        authority: str = ""

    async def authenticate(self, *, session: MqttSession) -> bool | None:
        authority = _authority(self.config)
        return await asyncio.to_thread(
            authority.authenticate, session.username, session.password, session.client_id
        )


class DeviceTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]
    @dataclass
    class Config:
        authority: str = ""

    async def topic_filtering(
        self, *, session: MqttSession | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool | None:
        if session is None or topic is None or action is None:
            return False
        allowed = _authority(self.config).allowed(session.username, topic, action)
        if not allowed and action != Action.RECEIVE:
            log.warning("broker refused %s of %s by %s", action.value, topic, session.username)
        return allowed


class EmbeddedBroker:
    def __init__(self, authority: DeviceAuthority, host: str, port: int) -> None:
        self._key = secrets.token_hex(8)
        self._authority = authority
        self.host, self.port = host, port
        self._broker: Broker | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        _AUTHORITIES[self._key] = self._authority
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                f"{__name__}.DeviceAuthPlugin": {"authority": self._key},
                f"{__name__}.DeviceTopicPlugin": {"authority": self._key},
            },
        }
        self._broker = Broker(config)
        try:
            await self._broker.start()
        except Exception as err:
            _AUTHORITIES.pop(self._key, None)
            raise BrokerError(f"the embedded broker cannot listen on {self.host}:{self.port}: {err}") from err
        log.info("embedded MQTT broker on %s", self.url)

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
        _AUTHORITIES.pop(self._key, None)
