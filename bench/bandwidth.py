"""Bytes on the wire per device-hour (events + telemetry + status, MQTT framing included) vs raw streaming."""

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PACKAGES = ("paho-mqtt",)
SAMPLE_RATE_HZ = 200
AXES = 6
RAW_BYTES_PER_SAMPLE = AXES * 2  # the MPU6050's int16 registers, the most compact raw stream
CSV_BYTES_PER_SAMPLE = 52  # "ax,ay,az,gx,gy,gz\n" with 5 decimals, as the seed firmware logs


def mqtt_publish_bytes(topic: str, payload: bytes, qos: int = 1) -> int:
    """PUBLISH (fixed header + topic + packet id + payload) plus its PUBACK (4 bytes) for QoS 1."""
    remaining = 2 + len(topic.encode()) + (2 if qos else 0) + len(payload)
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16384 else 3
    return 1 + length_bytes + remaining + (4 if qos else 0)


def run(options: Mapping[str, str]) -> dict[str, Any]:
    from edgefleet.edge.clock import ClockConfig
    from edgefleet.edge.commissioning import CommissioningConfig
    from edgefleet.edge.config import DeviceConfig, OutboxConfig
    from edgefleet.edge.device import Device
    from edgefleet.edge.model import load_model_dir
    from edgefleet.edge.sources.synthetic import SyntheticSource

    hours = float(options.get("hours", "1"))
    anomaly_target = float(options.get("anomaly_rate", "0.01"))
    telemetry_s = float(options.get("telemetry_interval", "60"))
    import _edge_models

    model_dir, origin = _edge_models.bench_model(options.get("features", "spectral"), options)
    bundle = load_model_dir(model_dir)
    commission_s = 200 * 128 / SAMPLE_RATE_HZ
    total_s = commission_s + hours * 3600
    # Fault episodes of 12 s spread over the hour so that about `anomaly_rate` of windows are anomalous.
    episode_s = 12.0
    episodes = max(1, round(anomaly_target * hours * 3600 / episode_s))
    gap = hours * 3600 / episodes
    faults = ("imbalance", "bearing_outer", "misalignment", "looseness", "bearing_inner")
    starts = [commission_s + gap * (i + 0.5) for i in range(episodes)]
    spec = ",".join(
        f"{faults[i % len(faults)]}@{t:.1f}x0.5,normal@{t + episode_s:.1f}" for i, t in enumerate(starts)
    )
    with tempfile.TemporaryDirectory() as tmp:
        cfg = DeviceConfig(
            device_id="bench-bw",
            outbox=OutboxConfig(directory=Path(tmp), max_messages=1_000_000),
            clock=ClockConfig(enabled=False),
            telemetry_interval_s=telemetry_s,
            commissioning=CommissioningConfig(windows=200),
        )
        device = Device(cfg, bundle, SyntheticSource(seed=21, faults=spec), connect=False)
        while device.stream_s < commission_s:
            device.step(4096)
        before = {m.seq for m in device.outbox.pending(limit=10**9)}
        anomalous = scored = 0
        while device.stream_s < total_s:
            for result in device.step(4096):
                if result.score is not None:
                    scored += 1
                    anomalous += int(result.anomaly)
        messages = [m for m in device.outbox.pending(limit=10**9) if m.seq not in before]
        status_online = device._status_payload("online")
        status_offline = device._status_payload("offline")
        device.close(graceful=False)
    status_topic = f"ef/v1/{cfg.device_id}/status"
    # once per hour: the online status on connect and the last will registered with CONNECT
    wire = sum(mqtt_publish_bytes(m.topic, m.payload) for m in messages)
    wire += mqtt_publish_bytes(status_topic, status_online) + len(status_offline) + len(status_topic) + 4
    per_hour = wire / hours
    raw_per_hour = SAMPLE_RATE_HZ * 3600 * RAW_BYTES_PER_SAMPLE
    events = [m for m in messages if m.kind == "event"]
    telemetry = [m for m in messages if m.kind == "telemetry"]
    return {
        "reduction": round(1 - per_hour / raw_per_hour, 5),
        "bytes_per_device_hour": round(per_hour),
        "raw_bytes_per_device_hour": raw_per_hour,
        "reduction_vs_csv_stream": round(1 - per_hour / (SAMPLE_RATE_HZ * 3600 * CSV_BYTES_PER_SAMPLE), 5),
        "target_reduction": 0.995,
        "meets_target": 1 - per_hour / raw_per_hour >= 0.995,
        "anomaly_rate": round(anomalous / max(1, scored), 4),
        "events_per_hour": round(len(events) / hours, 1),
        "telemetry_per_hour": round(len(telemetry) / hours, 1),
        "mean_event_bytes": round(sum(len(m.payload) for m in events) / max(1, len(events))),
        "mean_telemetry_bytes": round(sum(len(m.payload) for m in telemetry) / max(1, len(telemetry))),
        "telemetry_interval_s": telemetry_s,
        "raw_baseline": "200 Hz x 6 axes x int16 (12 B/sample), no framing counted for it",
        "model": origin,
    }
