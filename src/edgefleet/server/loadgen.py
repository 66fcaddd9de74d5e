"""A load generator: devices publishing events over MQTT, as fast as allowed or at a set rate.

Run as `python -m edgefleet.server.loadgen '<json options>'`; prints one JSON line of results.
Used by `bench/ingest.py` in separate processes so the publishers do not share the server's GIL.

Two engines, both QoS 1 with an in-flight window (a message counts once its PUBACK is back):

- `paho` (the raw-broker baseline: "a plain paho publisher");
- `lean` (default): pre-encoded PUBLISH packets written straight to the socket, so that on a 2-core
  machine the publishers leave the CPU to what is measured. paho spends ~100-300 us of CPU per
  message; this ~5-10 us. The broker sees the same packets either way.
"""

import json
import select
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet.contracts import Channel, Event, encode, topic_for

MAX_INFLIGHT = 1000
_PUBACK = 0x40
_CONNACK = 0x20


class LoadgenError(RuntimeError):
    """The broker refused or dropped the publisher."""


def event_payload(device_id: str, seq: int) -> bytes:
    """A person-detection event as a camera node sends it, stamped now."""
    return encode(
        Event(
            device_id=device_id,
            seq=seq,
            ts=datetime.now(UTC),
            kind="person",
            score=0.87,
            person_count=1,
            model_id="person_detect",
            model_version="1.0.0",
            features={"area": 0.2},
        )
    )


def event_template(device_id: str) -> bytes:
    """`event_payload` with `%d` for the seq: `template % seq` (one timestamp for all)."""
    return event_payload(device_id, 0).replace(b'"seq":0,', b'"seq":%d,')


def _topic(device_id: str, raw: bool) -> str:
    return f"bench/raw/{device_id}" if raw else topic_for(device_id, Channel.EVENT)


# --- lean engine: MQTT packets by hand ---------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = n >> 7, n & 0x7F
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return len(data).to_bytes(2, "big") + data


def _connect_packet(client_id: str, username: str | None, password: str | None, mqtt5: bool) -> bytes:
    flags = 0x02  # clean session: a load generator has nothing to resume
    payload = _string(client_id)
    if username:
        flags |= 0x80
        payload += _string(username)
        if password is not None:
            flags |= 0x40
            payload += _string(password)
    body = _string("MQTT") + bytes([5 if mqtt5 else 4, flags]) + (60).to_bytes(2, "big")
    body += b"\x00" if mqtt5 else b""  # no CONNECT properties
    body += payload
    return b"\x10" + _varint(len(body)) + body


def _publish_packet(topic: bytes, packet_id: int, payload: bytes, mqtt5: bool) -> bytes:
    body_len = len(topic) + 2 + (1 if mqtt5 else 0) + len(payload)
    return b"".join(
        (
            b"\x32",  # PUBLISH, QoS 1
            _varint(body_len),
            topic,
            packet_id.to_bytes(2, "big"),
            b"\x00" if mqtt5 else b"",
            payload,
        )
    )


class _Packets:
    """Splits a byte stream into MQTT packets: (type nibble, body)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        packets: list[tuple[int, bytes]] = []
        while True:
            buf = self._buffer
            length, shift, i = 0, 0, 1
            while True:
                if i >= len(buf):
                    return packets
                byte = buf[i]
                length |= (byte & 0x7F) << shift
                shift += 7
                i += 1
                if not byte & 0x80:
                    break
            if len(buf) < i + length:
                return packets
            packets.append((buf[0] & 0xF0, bytes(buf[i : i + length])))
            del buf[: i + length]


@dataclass(frozen=True)
class _Plan:
    """Message n goes to device n mod len(devices), with that device's next seq."""

    devices: list[str]
    topics: dict[str, bytes]
    first_seq: int
    count: int
    """at most this many; a `for_s` bound may end the run earlier"""
    for_s: float = 0.0

    def at(self, n: int) -> tuple[bytes, int, str]:
        device = self.devices[n % len(self.devices)]
        return self.topics[device], self.first_seq + n // len(self.devices), device


def _open(options: dict[str, Any], mqtt5: bool) -> tuple[socket.socket, _Packets]:
    parts = urlsplit(options["broker"])
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 1883), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(
        _connect_packet(options["client_id"], options.get("username"), options.get("password"), mqtt5)
    )
    packets = _Packets()
    connack: list[tuple[int, bytes]] = []
    while not connack:
        data = sock.recv(4096)
        if not data:
            raise LoadgenError("the broker closed the connection instead of a CONNACK")
        connack = packets.feed(data)
    kind, body = connack[0]
    if kind != _CONNACK or len(body) < 2 or body[1] != 0:
        raise LoadgenError(f"the broker refused the publisher (CONNACK {body.hex()})")
    sock.setblocking(False)
    return sock, packets


def _lean(options: dict[str, Any], plan: _Plan, rate: float) -> dict[str, Any]:
    """Publish the plan over one connection, at most `inflight` unacknowledged; counts and seconds."""
    mqtt5 = bool(options.get("mqtt5", True))
    window = int(options.get("inflight", MAX_INFLIGHT))
    fresh_ts = bool(options.get("fresh_ts", rate > 0))  # latency runs measure from `ts`
    templates: dict[str, bytes] = {}
    sock, packets = _open(options, mqtt5)
    cpu = time.process_time()
    outstanding: set[int] = set()
    next_id, sent, acked, total = 0, 0, 0, plan.count
    started = time.perf_counter()
    started_at = time.time()  # wall clock, comparable across processes
    deadline = None
    while sent < total or (acked < sent and deadline is not None):
        chunk = []
        elapsed = time.perf_counter() - started
        if plan.for_s and elapsed >= plan.for_s:
            total = sent  # time is up: stop publishing, collect the PUBACKs
        while sent < total and len(outstanding) < window:
            if rate > 0 and (sent + 1) / rate > time.perf_counter() - started:
                break
            topic, seq, device = plan.at(sent)
            next_id = next_id % 65535 + 1
            while next_id in outstanding:
                next_id = next_id % 65535 + 1
            if fresh_ts:
                payload = event_payload(device, seq)
            else:
                template = templates.get(device)
                if template is None:
                    template = templates[device] = event_template(device)
                payload = template % seq
            chunk.append(_publish_packet(topic, next_id, payload, mqtt5))
            outstanding.add(next_id)
            sent += 1
        if chunk:
            sock.setblocking(True)
            sock.sendall(b"".join(chunk))
            sock.setblocking(False)
        if sent >= total and deadline is None:
            deadline = time.monotonic() + max(30.0, sent / 1000)
        if deadline is not None and (time.monotonic() > deadline or acked >= sent):
            break
        wait = 0.5
        if rate > 0 and sent < total:
            wait = max(0.0, (sent + 1) / rate - (time.perf_counter() - started))
        elif len(outstanding) < window and sent < total:
            wait = 0.0
        readable, _, _ = select.select([sock], [], [], wait)
        if not readable:
            continue
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            continue
        if not data:
            raise LoadgenError(f"the broker closed the connection after {acked} PUBACKs")
        for kind, body in packets.feed(data):
            if kind == _PUBACK:
                packet_id = int.from_bytes(body[:2], "big")
                if len(body) > 2 and body[2] >= 0x80:
                    raise LoadgenError(f"the broker refused a message (PUBACK reason {body[2]:#x})")
                if packet_id in outstanding:
                    outstanding.discard(packet_id)
                    acked += 1
    seconds = time.perf_counter() - started
    try:
        sock.setblocking(True)
        sock.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError:
        pass
    sock.close()
    return {
        "published": sent,
        "acked": acked,
        "seconds": seconds,
        "cpu_s": time.process_time() - cpu,
        "started_at": started_at,
    }


# --- paho engine -----------------------------------------------------------------------------------------
def _paho(options: dict[str, Any], messages: list[tuple[bytes, int, str]], rate: float) -> dict[str, Any]:
    parts = urlsplit(options["broker"])
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=options["client_id"],
        protocol=mqtt.MQTTv5 if options.get("mqtt5", True) else mqtt.MQTTv311,
    )
    if options.get("username"):
        client.username_pw_set(options["username"], options.get("password"))
    client.max_inflight_messages_set(options.get("inflight", MAX_INFLIGHT))
    client.max_queued_messages_set(0)
    count = len(messages)
    acked = 0
    done = threading.Event()
    lock = threading.Lock()

    def on_publish(*_args: Any) -> None:
        nonlocal acked
        with lock:
            acked += 1
            if acked >= count:
                done.set()

    connected = threading.Event()
    client.on_publish = on_publish
    client.on_connect = lambda *_a: connected.set()
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    connected.wait(10)
    templates = {device: event_template(device) for _, _, device in messages}
    started, cpu = time.perf_counter(), time.process_time()
    for n, (topic, seq, device) in enumerate(messages):
        payload = event_payload(device, seq) if rate > 0 else templates[device] % seq
        while True:
            info = client.publish(topic[2:].decode(), payload, qos=1)  # without its length prefix
            if info.rc != mqtt.MQTT_ERR_QUEUE_SIZE:
                break
            time.sleep(0.001)
        if rate > 0:
            ahead = (n + 1) / rate - (time.perf_counter() - started)
            if ahead > 0.002:
                time.sleep(ahead)
    done.wait(max(30.0, count / 1000))
    seconds = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return {"published": count, "acked": acked, "seconds": seconds, "cpu_s": time.process_time() - cpu}


def run(options: dict[str, Any]) -> dict[str, Any]:
    """Publish `count` messages round-robin over `devices` (or raw topics), QoS 1; `rate` 0 = flat out.

    Options: broker, devices, count, client_id, [username, password], rate, raw, first_seq, mqtt5,
    inflight, engine ("lean" or "paho"), for_s (lean: stop publishing after this many seconds),
    fresh_ts (lean: stamp every message now; default when paced)."""
    devices: list[str] = options["devices"]
    raw: bool = options.get("raw", False)
    plan = _Plan(
        devices,
        {d: _string(_topic(d, raw)) for d in devices},
        int(options.get("first_seq", 1)),
        int(options["count"]),
        float(options.get("for_s", 0.0)),
    )
    rate = float(options.get("rate", 0.0))
    if options.get("engine", "lean") == "paho":
        return _paho(options, [plan.at(n) for n in range(plan.count)], rate)
    return _lean(options, plan, rate)


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))  # noqa: T201 - the process's result
