"""A paho device for tests, and polling helpers."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from edgefleet.contracts import Channel, DeviceMessage, encode, topic_for


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@contextmanager
def device_client(
    port: int, client_id: str, username: str | None = None, password: str | None = None
) -> Iterator[mqtt.Client]:
    """A connected MQTT 5 client; raises ConnectionRefusedError when the broker refuses it."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if username:
        client.username_pw_set(username, password)
    result: list[ReasonCode] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: result.append(reason)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_until(lambda: bool(result), 5, "CONNACK")
        if result[0].is_failure:
            raise ConnectionRefusedError(str(result[0]))
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish(client: mqtt.Client, message: DeviceMessage, channel: Channel, topic: str | None = None) -> int:
    """Publish at QoS 1 and wait for the PUBACK; returns its reason code value."""
    info = client.publish(topic or topic_for(message.device_id, channel), encode(message), qos=1)
    info.wait_for_publish(5)
    return info.rc
