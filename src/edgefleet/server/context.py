"""Everything one server instance holds: settings, database, hub, metrics, MQTT parts."""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.contracts import Command, OtaCommand
from edgefleet.server.cluster.redis_hub import RedisHub
from edgefleet.server.hub import Hub
from edgefleet.server.metrics import Metrics
from edgefleet.server.ratelimit import LoginRateLimiter
from edgefleet.server.settings import ServerSettings

log = logging.getLogger(__name__)


@dataclass
class ServerContext:
    settings: ServerSettings
    engine: Engine
    sessions: sessionmaker[Session]
    limiter: LoginRateLimiter
    hub: Hub | RedisHub
    """In this process (the embedded default), or over Redis to every API process (REDIS_URL)."""
    metrics: Metrics
    publish_command: Callable[[Command], None] | None = None
    """Set when an MQTT connection exists; routes answer 503 otherwise."""
    publish_ota: Callable[[OtaCommand], None] | None = None
    """Publishes on the device's `ota/cmd` (QoS 1); set with `publish_command`."""
    broker_url_for_devices: str | None = None
    device_listeners: list[Callable[[], None]] = field(default_factory=list)
    """Called after device credentials change (claim, revoke, delete): broker sync, caches."""

    announce_devices_changed: Callable[[], None] | None = None
    """Tells the other server processes (`cluster/invalidation.py`); None: this is the only one."""

    def devices_changed(self) -> None:
        self.run_device_listeners()
        if self.announce_devices_changed is not None:
            self.announce_devices_changed()

    def run_device_listeners(self) -> None:
        for listener in self.device_listeners:
            try:
                listener()
            except Exception:
                log.exception("device change listener %r failed", listener)
