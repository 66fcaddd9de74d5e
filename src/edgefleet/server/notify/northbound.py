"""Device states on northbound MQTT channels, and Home Assistant MQTT discovery for them.

Per device, under the channel's prefix (all retained, republished when they change):
- `{prefix}/devices/{id}/state`: JSON `{device_id, name, online, mode, score, score_max, anomaly_rate,
  model_id, model_version, firmware_version, last_seen, open_alarms}` (`score`: the latest telemetry's
  p95 anomaly score, null when none)
- `{prefix}/devices/{id}/availability`: `online` / `offline`
- `{prefix}/devices/{id}/alarm/{kind}`: `ON` / `OFF`, one per alarm kind

With `ha_discovery`, Home Assistant's discovery topics
(`{discovery_prefix}/{component}/{node}/{object}/config`) announce per device a `sensor` (the score)
and a `binary_sensor` per alarm kind (device class `problem`), grouped under one HA device.
A device deleted from edgefleet gets its discovery topics emptied.
"""

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edgefleet.server.db.models import Alarm, Device, NotifyChannel, TelemetryRow
from edgefleet.server.notify.channels.base import SendError
from edgefleet.server.notify.channels.mqtt_north import (
    MqttLinks,
    Publication,
    alarm_state_topic,
    status_topic,
)
from edgefleet.server.notify.config import MqttConfig

log = logging.getLogger(__name__)
ALARM_KINDS = ("anomaly", "rule", "sensor_fault", "drift", "commissioning")
try:
    _VERSION = version("edgefleet")
except PackageNotFoundError:
    _VERSION = "0+unknown"


def node_id(device_id: str) -> str:
    """HA's node and object ids allow `[a-zA-Z0-9_-]`; device ids may also have dots."""
    return "edgefleet_" + re.sub(r"[^A-Za-z0-9_-]", "_", device_id)


@dataclass(frozen=True)
class DeviceView:
    id: str
    name: str
    kind: str
    online: bool
    mode: str | None
    model_id: str | None
    model_version: str | None
    firmware_version: str | None
    last_seen: datetime | None
    score: float | None
    score_max: float | None
    anomaly_rate: float | None
    open_alarms: tuple[str, ...]


def state_topic(config: MqttConfig, device_id: str) -> str:
    return f"{config.topic_prefix}/devices/{device_id}/state"


def availability_topic(config: MqttConfig, device_id: str) -> str:
    return f"{config.topic_prefix}/devices/{device_id}/availability"


def _ha_device(device: DeviceView, public_url: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "identifiers": [node_id(device.id)],
        "name": device.name or device.id,
        "manufacturer": "edgefleet",
        "model": device.model_id or f"{device.kind} device",
        "configuration_url": f"{public_url.rstrip('/')}/devices/{device.id}",
    }
    if device.firmware_version:
        info["sw_version"] = device.firmware_version
    return info


def discovery(config: MqttConfig, device: DeviceView, public_url: str) -> list[tuple[str, dict[str, Any]]]:
    """(topic, payload) of the Home Assistant discovery configs of one device."""
    node = node_id(device.id)
    common: dict[str, Any] = {
        "availability": [
            {"topic": status_topic(config)},
            {"topic": availability_topic(config, device.id)},
        ],
        "availability_mode": "all",
        "device": _ha_device(device, public_url),
        "origin": {"name": "edgefleet", "sw_version": _VERSION, "support_url": public_url},
        "qos": 1,
    }
    configs = [
        (
            f"{config.discovery_prefix}/sensor/{node}/score/config",
            {
                **common,
                "name": "Anomaly score",
                "unique_id": f"{node}_score",
                "state_topic": state_topic(config, device.id),
                "value_template": "{{ value_json.score }}",
                "json_attributes_topic": state_topic(config, device.id),
                "state_class": "measurement",
                "suggested_display_precision": 3,
                "icon": "mdi:chart-bell-curve",
            },
        )
    ]
    for kind in ALARM_KINDS:
        configs.append(
            (
                f"{config.discovery_prefix}/binary_sensor/{node}/alarm_{kind}/config",
                {
                    **common,
                    "name": f"{kind.replace('_', ' ').capitalize()} alarm",
                    "unique_id": f"{node}_alarm_{kind}",
                    "state_topic": alarm_state_topic(config, device.id, kind),
                    "device_class": "problem",
                    "payload_on": "ON",
                    "payload_off": "OFF",
                },
            )
        )
    return configs


def state(device: DeviceView) -> dict[str, Any]:
    return {
        "device_id": device.id,
        "name": device.name,
        "online": device.online,
        "mode": device.mode,
        "score": device.score,
        "score_max": device.score_max,
        "anomaly_rate": device.anomaly_rate,
        "model_id": device.model_id,
        "model_version": device.model_version,
        "firmware_version": device.firmware_version,
        "last_seen": device.last_seen.isoformat() if device.last_seen else None,
        "open_alarms": list(device.open_alarms),
    }


def device_views(session: Session, org_id: int) -> list[DeviceView]:
    devices = list(session.scalars(select(Device).where(Device.org_id == org_id).order_by(Device.id)))
    open_alarms: dict[str, set[str]] = {}
    query = select(Alarm.device_id, Alarm.kind).where(Alarm.org_id == org_id, Alarm.cleared_at.is_(None))
    for device_id, kind in session.execute(query):
        open_alarms.setdefault(device_id, set()).add(kind)
    views = []
    for device in devices:
        latest = session.scalar(  # one indexed lookup per device (ix_telemetry_device_ts)
            select(TelemetryRow)
            .where(TelemetryRow.device_id == device.id)
            .order_by(TelemetryRow.ts.desc())
            .limit(1)
        )
        views.append(
            DeviceView(
                id=device.id,
                name=device.name,
                kind=device.kind,
                online=bool(device.online) and device.revoked_at is None,
                mode=device.mode,
                model_id=device.model_id,
                model_version=device.model_version,
                firmware_version=device.firmware_version,
                last_seen=device.last_seen,
                score=latest.score_p95 if latest is not None else None,
                score_max=latest.score_max if latest is not None else None,
                anomaly_rate=latest.anomaly_rate if latest is not None else None,
                open_alarms=tuple(sorted(open_alarms.get(device.id, ()))),
            )
        )
    return views


def _encode(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()


@dataclass
class StatePublisher:
    """Publishes what changed since its last pass (everything on its first pass after a start), and
    `online` on the status topic every pass."""

    links: MqttLinks
    public_url: str
    timeout_s: float
    load: Callable[[NotifyChannel], MqttConfig | None]
    """The channel's settings with its secrets (None when they cannot be used)."""
    _sent: dict[tuple[int, str], bytes] = field(default_factory=dict)
    _devices: dict[int, set[str]] = field(default_factory=dict)

    def publications(self, channel_id: int, config: MqttConfig, views: list[DeviceView]) -> list[Publication]:
        wanted: list[tuple[str, bytes]] = []
        for device in views:
            wanted.append((state_topic(config, device.id), _encode(state(device))))
            wanted.append((availability_topic(config, device.id), b"online" if device.online else b"offline"))
            for kind in ALARM_KINDS:
                on = kind in device.open_alarms
                wanted.append((alarm_state_topic(config, device.id, kind), b"ON" if on else b"OFF"))
            if config.ha_discovery:
                wanted += [(t, _encode(p)) for t, p in discovery(config, device, self.public_url)]
        gone = self._devices.get(channel_id, set()) - {d.id for d in views}
        for device_id in sorted(gone):  # a deleted device: empty retained configs remove it from HA
            placeholder = DeviceView(
                device_id, "", "", False, None, None, None, None, None, None, None, None, ()
            )
            wanted += [(t, b"") for t, _ in discovery(config, placeholder, self.public_url)]
        self._devices[channel_id] = {d.id for d in views}
        changed = [(t, p, True) for t, p in wanted if self._sent.get((channel_id, t)) != p]
        # always: another worker that stopped (or died: its last will) may have said `offline`
        return [(status_topic(config), b"online", True), *changed]

    def run_once(self, sessions: sessionmaker[Session]) -> int:
        """One pass over every enabled MQTT channel; returns how many messages went out."""
        with sessions() as session:
            channels = list(
                session.scalars(
                    select(NotifyChannel).where(NotifyChannel.kind == "mqtt", NotifyChannel.enabled)
                )
            )
            work = [(channel, device_views(session, channel.org_id)) for channel in channels]
        self.links.keep_only({channel.id for channel, _ in work})
        sent = 0
        for channel, views in work:
            config, channel_id = self.load(channel), channel.id
            if config is None:
                continue
            messages = self.publications(channel_id, config, views)
            try:
                self.links.get(channel_id, config).publish(messages, self.timeout_s)
            except SendError as err:
                log.warning("northbound MQTT channel %d: device states not published: %s", channel_id, err)
                continue
            self._sent.update({(channel_id, t): p for t, p, _ in messages})
            sent += len(messages)
        return sent
