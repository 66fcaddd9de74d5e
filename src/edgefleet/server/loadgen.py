"""A load generator: devices publishing events over MQTT, as fast as allowed or at a set rate.

Run as `python -m edgefleet.server.loadgen '<json options>'`; prints one JSON line of results.
Used by `bench/ingest.py` in separate processes so the publishers do not share the server's GIL.
"""

import json
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgefleet.contracts import Channel, Event, encode, topic_for

MAX_INFLIGHT = 1000


def _event(device_id: str, seq: int) -> bytes:
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


def run(options: dict[str, Any]) -> dict[str, Any]:
    """Publish `count` messages round-robin over `devices` (or raw topics), QoS 1; `rate` 0 = flat out."""
    parts = urlsplit(options["broker"])
    devices: list[str] = options["devices"]
    count: int = options["count"]
    rate: float = options.get("rate", 0.0)
    raw: bool = options.get("raw", False)
    first_seq: int = options.get("first_seq", 1)
    mqtt5 = options.get("mqtt5", True)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=options["client_id"],
        protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
    )
    if options.get("username"):
        client.username_pw_set(options["username"], options.get("password"))
    client.max_inflight_messages_set(options.get("inflight", MAX_INFLIGHT))
    client.max_queued_messages_set(0)
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
    fresh_ts = rate > 0  # paced runs measure latency from `ts`; flat-out runs reuse a template
    templates = {d: _event(d, 0).replace(b'"seq":0,', b'"seq":%d,') for d in devices}
    started = time.perf_counter()
    for n in range(count):
        device_id = devices[n % len(devices)]
        seq = first_seq + n // len(devices)
        payload = _event(device_id, seq) if fresh_ts else templates[device_id] % seq
        topic = f"bench/raw/{device_id}" if raw else topic_for(device_id, Channel.EVENT)
        while True:
            info = client.publish(topic, payload, qos=1)
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
    return {"published": count, "acked": acked, "seconds": seconds}


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))  # noqa: T201 - the process's result
