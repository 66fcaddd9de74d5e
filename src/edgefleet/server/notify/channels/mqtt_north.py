"""Northbound MQTT: a connection per channel to the plant's broker (Node-RED, SCADA, historians, Home
Assistant), kept open between passes, with a last will that marks edgefleet offline.

Topics under the channel's `topic_prefix` (default `edgefleet`):
- `{prefix}/status`: `online` / `offline` (retained; the last will says `offline`; every state pass
  of every running worker says `online` again, so one of several workers stopping does not leave
  Home Assistant's entities unavailable for longer than `notify_state_interval_s`)
- `{prefix}/alarms/{device_id}/{kind}`: each alarm transition routed to the channel, the contract's
  `AlarmNotification` JSON (QoS 1, not retained; deduplicate on `id`)
- `{prefix}/devices/{device_id}/state`, `.../availability`, `.../alarm/{kind}`: see `northbound.py`
"""

import hashlib
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet.server.notify.channels.base import Outgoing, SendError, tls_context
from edgefleet.server.notify.config import MqttConfig

log = logging.getLogger(__name__)
Publication = tuple[str, bytes, bool]
"""(topic, payload, retain)"""


def status_topic(config: MqttConfig) -> str:
    return f"{config.topic_prefix}/status"


def alarm_topic(config: MqttConfig, device_id: str, kind: str) -> str:
    return f"{config.topic_prefix}/alarms/{device_id}/{kind}"


def alarm_state_topic(config: MqttConfig, device_id: str, kind: str) -> str:
    return f"{config.topic_prefix}/devices/{device_id}/alarm/{kind}"


class MqttLink:
    """One paho client on its own network thread; connects in the background and keeps trying."""

    def __init__(self, config: MqttConfig, ca_file: str | None) -> None:
        url = urlsplit(config.url)
        self.config = config
        self._connected = threading.Event()
        self._last_error = "not connected yet"
        client_id = f"edgefleet-north-{secrets.token_hex(4)}"  # several server processes may publish
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        if config.username:
            password = config.password.get_secret_value() if config.password else None
            self.client.username_pw_set(config.username, password)
        if url.scheme == "mqtts":
            self.client.tls_set_context(tls_context(ca_file))
        self.client.will_set(status_topic(config), b"offline", qos=1, retain=True)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        port = url.port or (8883 if url.scheme == "mqtts" else 1883)
        self.client.connect_async(url.hostname or "", port)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            self._last_error = f"the broker refused the connection: {reason}"
            return
        client.publish(status_topic(self.config), b"online", qos=1, retain=True)
        self._connected.set()

    def _on_disconnect(self, _c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        self._connected.clear()
        self._last_error = f"disconnected from the broker: {reason}"

    def publish(self, messages: list[Publication], timeout_s: float) -> None:
        """Publish at QoS 1 and wait for every PUBACK; SendError when that does not happen in time."""
        deadline = time.monotonic() + timeout_s
        if not self._connected.wait(timeout_s):
            raise SendError(f"{_where(self.config)}: {self._last_error}")
        infos = [
            self.client.publish(topic, payload, qos=1, retain=retain) for topic, payload, retain in messages
        ]
        for info in infos:
            info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            if not info.is_published():
                raise SendError(
                    f"{_where(self.config)}: no acknowledgement from the broker in {timeout_s:.0f} s"
                )

    def close(self) -> None:
        if self._connected.is_set():  # a clean disconnect sends no last will: say offline ourselves
            self.client.publish(status_topic(self.config), b"offline", qos=1, retain=True).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()


def _where(config: MqttConfig) -> str:
    url = urlsplit(config.url)
    return f"{url.scheme}://{url.hostname}:{url.port or ''}".rstrip(":")


@dataclass
class _Entry:
    fingerprint: str
    link: MqttLink


class MqttLinks:
    """The open links by channel id; a changed configuration opens a new one."""

    def __init__(self, ca_file: str | None) -> None:
        self._ca_file = ca_file
        self._links: dict[int, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, channel_id: int, config: MqttConfig) -> MqttLink:
        fingerprint = hashlib.sha256(
            json.dumps(config.model_dump(mode="json"), sort_keys=True).encode()
            + (config.password.get_secret_value().encode() if config.password else b"")
        ).hexdigest()
        with self._lock:
            entry = self._links.get(channel_id)
            if entry is not None and entry.fingerprint == fingerprint:
                return entry.link
            if entry is not None:
                entry.link.close()
            link = MqttLink(config, self._ca_file)
            self._links[channel_id] = _Entry(fingerprint, link)
            return link

    def keep_only(self, channel_ids: set[int]) -> None:
        with self._lock:
            for channel_id in set(self._links) - channel_ids:
                self._links.pop(channel_id).link.close()

    def close(self) -> None:
        self.keep_only(set())


def send(links: MqttLinks, channel_id: int, config: MqttConfig, out: Outgoing) -> None:
    """An alarm transition: its JSON on the alarm topic (not retained). The alarm's retained ON/OFF
    state comes only from the state publisher (`northbound.py`), which reads it from the database:
    a late retry of an `opened` must not leave ON retained after the alarm cleared."""
    note = out.note
    if note.alarm is None:
        messages: list[Publication] = [(f"{config.topic_prefix}/test", out.body, False)]
    else:
        messages = [(alarm_topic(config, note.alarm.device_id, note.alarm.kind), out.body, False)]
    links.get(channel_id, config).publish(messages, out.timeout_s)
