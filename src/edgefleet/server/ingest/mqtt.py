"""Broker URLs and paho clients (MQTT 5, TLS for mqtts://)."""

import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet.contracts import Message, encode
from edgefleet.server.errors import BrokerError, ConfigError
from edgefleet.server.ingest.buffered import BufferedClient


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(f"broker URL {url!r} is not mqtt://host[:port] or mqtts://host[:port]")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as err:
        raise ConfigError(f"broker URL {url!r} has a bad port") from err
    return BrokerAddress(
        parts.hostname,
        port,
        tls,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )


def make_client(
    client_id: str,
    address: BrokerAddress,
    *,
    username: str | None,
    password: str | None,
    ca_file: str | None = None,
    manual_ack: bool = False,
    mqtt5: bool = True,
) -> BufferedClient:
    """An MQTT 5 client, or a 3.1.1 client with a persistent session (clean_session False)."""
    client = BufferedClient(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
        clean_session=None if mqtt5 else False,
        manual_ack=manual_ack,
    )
    user = address.username or username
    if user:
        client.username_pw_set(user, address.password or password)
    if address.tls:
        client.tls_set(ca_certs=ca_file, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    return client


def publish_qos1(client: mqtt.Client, topic: str, message: Message) -> None:
    """Queue `message` for the broker at QoS 1; paho refusing it at once is a BrokerError."""
    info = client.publish(topic, encode(message), qos=1)
    if info.rc != mqtt.MQTT_ERR_SUCCESS:
        raise BrokerError(f"publishing to {topic} failed: {mqtt.error_string(info.rc)}")
