"""A paho client that reads its socket in large chunks, hands over PUBLISH packets lean, and
acknowledges in batches.

Stock paho reads every packet with three or four `recv` calls (the command byte, each byte of the
remaining length, the rest) and sends every PUBACK as its own packet, waking its network thread each
time. At thousands of messages a second that is the ingest's main cost: every one of those system
calls drops and retakes the GIL that the writer thread is using. Here the socket is read 64 KiB at a
time into a buffer that paho drains without system calls, and a committed batch is acknowledged
with one write. With `on_raw_publish` set, a QoS 0/1 PUBLISH goes to it as (topic, payload, mid,
qos) without paho's per-message `MQTTMessage`, MQTT 5 property objects and topic-filter matching
(about half of paho's cost per message); QoS 2 and anything unusual take paho's own path.

This relies on paho's documented socket protocol (`recv`, `send`, `pending`, which paho already
honours for TLS sockets) and on internals (`_create_socket`, `_handle_publish`, `_in_packet`,
`_packet_queue`, `_send_puback`); `pyproject.toml` pins paho-mqtt below 3, and the tests run the
real client against a real broker.
"""

import struct
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

READ_CHUNK = 64 * 1024
MAX_PACKETS_PER_READ = 1_000
"""Packets taken from the buffer before paho gets to write (acknowledgements) and keep alive."""
_PUBACK = 0x40
_PUBACK_PACKET = struct.Struct("!BBH")
RawPublish = Callable[[str, bytes, int, int], None]
"""(topic, payload, mid, qos), called on paho's network thread."""


def parse_publish(command: int, packet: bytes | bytearray, mqtt5: bool) -> tuple[str, bytes, int, int] | None:
    """(topic, payload, mid, qos) of a QoS 0/1 PUBLISH packet (what follows its fixed header);
    None for QoS 2 or anything paho's own decoder should judge (bad lengths, empty or non-UTF-8
    topic: MQTT 5 topic aliases are not enabled, so a topic is never empty)."""
    qos = (command & 0x06) >> 1
    size = len(packet)
    if qos > 1 or size < 2:
        return None
    offset = 2 + int.from_bytes(packet[0:2], "big")
    if offset == 2 or offset > size:
        return None
    try:
        topic = packet[2:offset].decode()
    except UnicodeDecodeError:
        return None
    mid = 0
    if qos:
        if offset + 2 > size:
            return None
        mid = int.from_bytes(packet[offset : offset + 2], "big")
        offset += 2
    if mqtt5:  # skip the properties: a variable byte integer length, then that many bytes
        length, shift = 0, 0
        while True:
            if offset >= size or shift > 21:
                return None
            byte = packet[offset]
            offset += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        offset += length
        if offset > size:
            return None
    return topic, bytes(packet[offset:]), mid, qos


class BufferedSocket:
    """A socket whose `recv` is served from a buffer filled `READ_CHUNK` bytes at a time."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = b""
        self._offset = 0

    @property
    def buffered(self) -> int:
        return len(self._buffer) - self._offset

    def recv(self, size: int) -> bytes:
        if self._offset >= len(self._buffer):
            data: bytes = self._sock.recv(max(size, READ_CHUNK))  # BlockingIOError passes through
            if len(data) <= size:
                self._buffer, self._offset = b"", 0
                return data
            self._buffer, self._offset = data, 0
        start = self._offset
        self._offset = min(start + size, len(self._buffer))
        return self._buffer[start : self._offset]

    def pending(self) -> int:
        """Bytes readable without waiting; paho's loop skips `select` while there are any."""
        inner = getattr(self._sock, "pending", None)
        return self.buffered + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:
        """Everything else (`send`, `fileno`, `setblocking`, `close`, TLS calls) is the socket's."""
        return getattr(self._sock, name)


class BufferedClient(mqtt.Client):
    """paho's client over a `BufferedSocket`, with `ack_many` for a whole batch of QoS 1 messages and
    `on_raw_publish` for received messages (in place of `on_message`)."""

    on_raw_publish: RawPublish | None = None

    def _handle_publish(self) -> MQTTErrorCode:
        handler = self.on_raw_publish
        if handler is None:
            return super()._handle_publish()
        parsed = parse_publish(
            self._in_packet["command"], self._in_packet["packet"], self._protocol == mqtt.MQTTv5
        )
        if parsed is None:
            return super()._handle_publish()
        topic, payload, mid, qos = parsed
        handler(topic, payload, mid, qos)
        if qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        return sock if self._transport == "websockets" else BufferedSocket(sock)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Read what the socket has, then every whole packet already in the buffer."""
        rc = super().loop_read(max_packets)
        for _ in range(MAX_PACKETS_PER_READ):
            sock = self._sock
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or not isinstance(sock, BufferedSocket):
                break
            if not sock.buffered:
                break
            rc = super().loop_read(1)  # each call takes at least one buffered byte: it ends
        return rc

    def ack_many(self, mids: Iterable[int]) -> MQTTErrorCode:
        """PUBACK every message id in one write (for messages received with manual acknowledgement)."""
        packet = b"".join(_PUBACK_PACKET.pack(_PUBACK, 2, mid) for mid in mids)
        if not packet:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return self._packet_queue(_PUBACK, packet, 0, 0)
