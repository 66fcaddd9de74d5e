"""The MQTT client of the `api` and `worker` roles: they publish (device commands, OTA commands) and
receive nothing, so they take no share of the ingest's subscriptions."""

import logging
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from edgefleet.contracts import Channel, Command, Message, topic_for
from edgefleet.server.ingest.mqtt import BrokerAddress, make_client, publish_qos1

log = logging.getLogger(__name__)


class MqttPublisher:
    def __init__(
        self,
        address: BrokerAddress,
        *,
        client_id: str,
        username: str | None,
        password: str | None,
        ca_file: str | None = None,
    ) -> None:
        self._address = address
        self._client = make_client(client_id, address, username=username, password=password, ca_file=ca_file)
        self._client.reconnect_delay_set(min_delay=1, max_delay=5)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._connected = threading.Event()
        self.connect_error: str | None = None

    def start(self, timeout: float = 3.0) -> bool:
        """Connect (paho keeps trying in the background); whether it connected within `timeout`."""
        try:
            self._client.connect(self._address.host, self._address.port)
        except OSError as err:
            self.connect_error = f"{type(err).__name__}: {err}"
            self._client.connect_async(self._address.host, self._address.port)
        self._client.loop_start()
        if self._connected.wait(timeout):
            self.connect_error = None
            return True
        log.warning("the MQTT broker at %s is not reachable yet; publishing keeps trying", self._address.url)
        return False

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def publish_command(self, command: Command) -> None:
        self.publish_message(topic_for(command.device_id, Channel.CMD), command)

    def publish_message(self, topic: str, message: Message) -> None:
        publish_qos1(self._client, topic, message)

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            log.error("the MQTT broker refused the publisher: %s", reason)
            return
        self._connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._connected.clear()
        if reason.is_failure:
            log.warning("the publisher lost the MQTT broker (%s); paho reconnects", reason)
