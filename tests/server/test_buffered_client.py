"""The ingest's paho client: chunked socket reads and batched acknowledgements, against real Mosquitto."""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt import _packet
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgefleet.server.ingest.buffered import READ_CHUNK, BufferedClient, BufferedSocket, parse_publish
from tests.server.mqtt_helpers import wait_until
from tests.support.services import MosquittoBroker


@pytest.fixture
def socket_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_reads_are_served_from_one_chunk(socket_pair: tuple[socket.socket, socket.socket]) -> None:
    writer, reader = socket_pair
    buffered = BufferedSocket(reader)
    writer.sendall(b"\x30\x05hello\x40\x02\x00\x01")
    assert buffered.recv(1) == b"\x30"
    assert buffered.pending() == 10  # the rest came with the first read
    assert buffered.recv(1) == b"\x05"
    assert buffered.recv(5) == b"hello"
    assert buffered.recv(100) == b"\x40\x02\x00\x01"  # never more than was asked, never past the data
    assert buffered.pending() == 0
    with pytest.raises(BlockingIOError):  # empty buffer, nothing on the socket: as a socket says
        buffered.recv(1)


def test_a_large_message_arrives_whole_across_chunks(
    socket_pair: tuple[socket.socket, socket.socket],
) -> None:
    writer, reader = socket_pair
    buffered = BufferedSocket(reader)
    data = bytes(range(256)) * (3 * READ_CHUNK // 256)
    threading.Thread(target=writer.sendall, args=(data,), daemon=True).start()
    received = bytearray()
    deadline = time.monotonic() + 10
    while len(received) < len(data) and time.monotonic() < deadline:
        try:
            received += buffered.recv(len(data) - len(received))
        except BlockingIOError:
            time.sleep(0.001)
    assert bytes(received) == data


def test_end_of_stream_reads_empty(socket_pair: tuple[socket.socket, socket.socket]) -> None:
    writer, reader = socket_pair
    buffered = BufferedSocket(reader)
    writer.sendall(b"ab")
    writer.close()
    time.sleep(0.05)
    assert buffered.recv(1) == b"a"
    assert buffered.recv(1) == b"b"
    assert buffered.recv(1) == b""  # paho reads this as a lost connection


class Delivered(NamedTuple):
    topic: str
    payload: bytes
    mid: int
    qos: int


def _publish_packet(topic: bytes, qos: int, mid: int, properties: bytes, payload: bytes) -> bytes:
    """What follows the fixed header of a PUBLISH (MQTT 5 when `properties` is not empty)."""
    body = len(topic).to_bytes(2, "big") + topic + (mid.to_bytes(2, "big") if qos else b"")
    if properties:
        body += bytes([len(properties)]) + properties
    return body + payload


@given(
    topic=st.text(min_size=1, max_size=60).map(str.encode),
    qos=st.integers(0, 1),
    mid=st.integers(1, 65535),
    payload=st.binary(max_size=300),
    expiry=st.integers(0, 2**32 - 1),
)
def test_lean_publish_parsing_matches_paho(
    topic: bytes, qos: int, mid: int, payload: bytes, expiry: int
) -> None:
    properties = b"\x02" + expiry.to_bytes(4, "big")  # message expiry interval
    for mqtt5, props in ((True, properties), (True, b"\x00"), (False, b"")):
        packet = _publish_packet(topic, qos, mid, props if mqtt5 else b"", payload)
        if mqtt5 and props == b"\x00":
            packet = _publish_packet(topic, qos, mid, b"", b"") + b"\x00" + payload  # empty properties
        command = 0x30 | (qos << 1)
        protocol = MQTTProtocolVersion.MQTTv5 if mqtt5 else MQTTProtocolVersion.MQTTv311
        paho = _packet.decode_publish(command, packet, protocol)
        assert parse_publish(command, packet, mqtt5) == (
            paho.topic.decode(),
            paho.payload,
            paho.mid,
            paho.qos,
        )


@pytest.mark.parametrize(
    ("command", "packet"),
    [
        (0x34, b"\x00\x01t\x00\x01"),  # QoS 2: paho's own path
        (0x32, b"\x00\x05ab"),  # topic longer than the packet
        (0x32, b"\x00\x00\x00\x01\x00"),  # empty topic (no topic aliases are enabled)
        (0x32, b"\x00\x01\xff\x00\x01\x00"),  # topic not UTF-8
        (0x32, b"\x00\x01t\x00"),  # packet id cut short
        (0x32, b"\x00\x01t\x00\x01\x09\x00"),  # properties longer than the packet
        (0x32, b"\x00\x01t\x00\x01\xff\xff\xff\xff\x01"),  # properties length over 4 bytes
        (0x30, b"\x00"),
    ],
)
def test_odd_packets_are_left_to_paho(command: int, packet: bytes) -> None:
    assert parse_publish(command, packet, mqtt5=True) is None


@contextmanager
def _subscriber(port: int, client_id: str, acks: bool) -> Iterator[tuple[BufferedClient, list[Delivered]]]:
    """A persistent-session subscriber; when `acks`, a thread acknowledges what arrived every 5 ms
    with one `ack_many` (as the ingest writer does after each commit)."""
    client = BufferedClient(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
    )
    received: list[Delivered] = []
    lock = threading.Lock()
    ready, done = threading.Event(), threading.Event()

    def on_publish(topic: str, payload: bytes, mid: int, qos: int) -> None:
        with lock:
            received.append(Delivered(topic, payload, mid, qos))

    def acknowledge() -> None:
        acked = 0
        while not done.wait(0.005):
            with lock:
                fresh = received[acked:]
            client.ack_many(m.mid for m in fresh)
            acked += len(fresh)

    client.on_raw_publish = on_publish
    client.on_subscribe = lambda *_args: ready.set()
    client.on_connect = lambda c, *_args: c.subscribe("burst/#", qos=1)
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 300
    client.connect("127.0.0.1", port, clean_start=False, properties=properties)
    client.loop_start()
    acker = threading.Thread(target=acknowledge, daemon=True)
    if acks:
        acker.start()
    try:
        assert ready.wait(10), "no SUBACK"
        yield client, received
    finally:
        done.set()
        if acks:
            acker.join()
            time.sleep(0.3)  # the loop thread writes the last acknowledgements
        client.disconnect()
        client.loop_stop()


def _payload(n: int) -> bytes:
    return f"message {n} ".encode() * 20


def _publish_burst(port: int, count: int) -> None:
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="burst-pub", protocol=mqtt.MQTTv5)
    publisher.max_inflight_messages_set(1000)
    publisher.connect("127.0.0.1", port)
    publisher.loop_start()
    infos = [publisher.publish(f"burst/{n % 7}", _payload(n), qos=1) for n in range(count)]
    for info in infos:
        info.wait_for_publish(10)
    publisher.disconnect()
    publisher.loop_stop()


@pytest.mark.needs("mosquitto")
def test_a_burst_arrives_whole_and_batched_acks_settle_it(mosquitto: MosquittoBroker) -> None:
    count = 3000
    with _subscriber(mosquitto.port, "buffered-sub", acks=True) as (_client, received):
        _publish_burst(mosquitto.port, count)
        wait_until(lambda: len(received) >= count, 20, f"{count} messages")
        assert {m.payload for m in received} == {_payload(n) for n in range(count)}
        assert {m.topic for m in received} == {f"burst/{n}" for n in range(7)}
        assert {m.qos for m in received} == {1}
    # Acknowledged: the persistent session has nothing left to send again.
    with _subscriber(mosquitto.port, "buffered-sub", acks=False) as (_client, again):
        time.sleep(1.0)
        assert again == []


@pytest.mark.needs("mosquitto")
def test_unacknowledged_messages_come_again_after_a_reconnect(mosquitto: MosquittoBroker) -> None:
    count = 20  # Mosquitto's default in-flight window: no more come until these are acknowledged
    with _subscriber(mosquitto.port, "unacked-sub", acks=False) as (_client, received):
        _publish_burst(mosquitto.port, count)
        wait_until(lambda: len(received) >= count, 20, f"{count} messages")
    with _subscriber(mosquitto.port, "unacked-sub", acks=True) as (_client, again):
        wait_until(lambda: len(again) >= count, 20, "the redelivery")
        assert {m.payload for m in again} == {m.payload for m in received}
