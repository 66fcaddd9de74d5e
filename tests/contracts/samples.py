"""One valid example of every wire message, for round trips and mutations."""

import base64
from datetime import UTC, datetime

from edgefleet.contracts import (
    Ack,
    Command,
    Event,
    ModelManifest,
    OtaCommand,
    OtaState,
    SelfTestCase,
    Status,
    Telemetry,
    VersionedMessage,
    WindowSample,
)

TS = datetime(2026, 11, 23, 12, 0, 0, 123000, tzinfo=UTC)
DEVICE = "pump-07"
# The smallest valid JPEG header bytes; contents do not matter to the contract.
THUMBNAIL = base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(200)).decode()
# 4 samples x 2 axes of int16 little-endian.
WINDOW_DATA = base64.b64encode(bytes(range(16))).decode()


def sample_messages() -> list[VersionedMessage]:
    return [
        Status(
            device_id=DEVICE,
            seq=1,
            ts=TS,
            state="online",
            kind="vibration",
            mode="running",
            firmware_version="1.2.0",
            model_id="vib-ae",
            model_version="3",
        ),
        Event(
            device_id=DEVICE,
            seq=2,
            ts=TS,
            kind="anomaly",
            score=0.91,
            threshold=0.4,
            model_id="vib-ae",
            model_version="3",
            window=4711,
            features={"ax_rms": 0.31, "gz_kurtosis": 7.5},
        ),
        Event(
            device_id=DEVICE,
            seq=3,
            ts=TS,
            kind="person",
            score=0.88,
            person_count=1,
            thumbnail_jpeg=THUMBNAIL,
        ),
        Event(device_id=DEVICE, seq=4, ts=TS, kind="sensor_fault", reason="stuck_axis", severity="critical"),
        Event(device_id=DEVICE, seq=5, ts=TS, kind="rule", reason="zone_C", active=False),
        Telemetry(
            device_id=DEVICE,
            seq=6,
            ts=TS,
            clock_synced=False,
            mode="commissioning",
            uptime_s=3600.5,
            interval_s=60,
            windows=94,
            anomaly_rate=0.01,
            score_p50=0.1,
            score_p95=0.3,
            score_max=0.9,
            inference_us=412.0,
            arena_bytes=3120,
            rejected={"nan": 2, "stuck_axis": 1},
            outbox_depth=3,
            drift=0.05,
        ),
        OtaState(device_id=DEVICE, seq=7, ts=TS, state="DOWNLOADING", progress=0.5, rollout_id="r1"),
        OtaState(device_id=DEVICE, seq=8, ts=TS, state="FAILED", reason="signature mismatch"),
        WindowSample(
            device_id=DEVICE,
            seq=9,
            ts=TS,
            model_id="vib-ae",
            model_version="3",
            window=812,
            sample_rate_hz=200.0,
            axes=["ax", "az"],
            length=4,
            scale=[6.1e-05, 6.1e-05],
            data=WINDOW_DATA,
            score=0.12,
            threshold=0.4,
        ),
        Ack(device_id=DEVICE, ts=TS, ranges=[(2, 9), (12, 12)]),
        Command(device_id=DEVICE, ts=TS, command_id="c-1", command="recommission", args={"windows": 200}),
        OtaCommand(
            device_id=DEVICE,
            ts=TS,
            command_id="c-2",
            action="update",
            rollout_id="r1",
            manifest=ModelManifest(
                model_id="vib-ae",
                model_version="4",
                url="https://fleet.example/api/v1/models/vib-ae/4/artifact",
                sha256="a" * 64,
                size=5120,
                min_runtime_version="0.1.0",
                signature=base64.b64encode(bytes(64)).decode(),
                self_test=[SelfTestCase(input_int8=[1, -2, 3], expected_int8=[4, 5, 6])],
            ),
        ),
    ]
