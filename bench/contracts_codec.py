"""Contract codec throughput: strict encode/decode of events and telemetry vs plain json (no validation)."""

import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from edgefleet.contracts import Channel, Event, Telemetry, VersionedMessage, decode, encode

PACKAGES = ("pydantic", "pydantic-core")


def _messages(count: int) -> list[VersionedMessage]:
    ts = datetime(2026, 11, 23, tzinfo=UTC)
    result: list[VersionedMessage] = []
    for seq in range(count):
        if seq % 10 == 0:
            result.append(
                Telemetry(
                    device_id="dev-1",
                    seq=seq,
                    ts=ts,
                    mode="running",
                    uptime_s=seq,
                    interval_s=60.0,
                    windows=94,
                    anomaly_rate=0.01,
                    score_p50=0.1,
                    score_p95=0.3,
                    score_max=0.8,
                    inference_us=400.0,
                    rejected={"nan": 1},
                    outbox_depth=0,
                    drift=0.02,
                )
            )
        else:
            result.append(
                Event(
                    device_id="dev-1",
                    seq=seq,
                    ts=ts,
                    kind="anomaly",
                    score=0.9,
                    threshold=0.5,
                    model_id="vib-ae",
                    model_version="1",
                    window=seq,
                    features={"ax_rms": 0.3, "ax_kurt": 3.1},
                )
            )
    return result


def _rate(count: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return round(count / best, 1)


def run(options: Mapping[str, str]) -> dict[str, Any]:
    count = int(options.get("messages", "20000"))
    messages = _messages(count)
    payloads = [encode(m) for m in messages]
    channels = [Channel.TELEMETRY if isinstance(m, Telemetry) else Channel.EVENT for m in messages]
    plain = [m.model_dump(mode="json", by_alias=True, exclude_none=True) for m in messages]

    encode_rate = _rate(count, lambda: [encode(m) for m in messages])
    decode_rate = _rate(count, lambda: [decode(c, p) for c, p in zip(channels, payloads, strict=True)])
    baseline_encode = _rate(count, lambda: [json.dumps(d, separators=(",", ":")).encode() for d in plain])
    baseline_decode = _rate(count, lambda: [json.loads(p) for p in payloads])
    return {
        "messages": count,
        "mean_payload_bytes": round(sum(map(len, payloads)) / count, 1),
        "encode_per_s": encode_rate,
        "decode_per_s": decode_rate,
        "baseline_json_encode_per_s": baseline_encode,
        "baseline_json_decode_per_s": baseline_decode,
        "decode_cost_vs_baseline": round(baseline_decode / decode_rate, 2),
    }
