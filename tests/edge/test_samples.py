"""The window sampler: only normal windows, rate limits, compact payloads, lowest outbox priority."""

from pathlib import Path

import numpy as np
import pytest

from edgefleet.contracts import MAX_PAYLOAD_BYTES, Channel, WindowSample, decode_topic
from edgefleet.dsp.window_codec import unpack_base64
from edgefleet.edge.clock import ClockConfig, DeviceClock
from edgefleet.edge.commissioning import CommissioningConfig
from edgefleet.edge.config import DeviceConfig, OutboxConfig
from edgefleet.edge.device import Device
from edgefleet.edge.model import load_model_dir
from edgefleet.edge.outbox import Outbox
from edgefleet.edge.pipeline import State, WindowResult
from edgefleet.edge.samples import SampleUploadConfig, WindowSampler
from edgefleet.edge.sources.synthetic import SyntheticSource

AXES = ("ax", "ay", "az", "gx", "gy", "gz")


def result(
    index: int, state: State = "normal", score: float | None = 0.1, anomaly: bool = False
) -> WindowResult:
    return WindowResult(index, score, 0.5, state, anomaly, [], None, [])


def windows(n: int, length: int = 128) -> np.ndarray:
    return np.random.default_rng(n).normal(0, 0.3, (n, length, len(AXES)))


def sampler(tmp_path: Path, max_messages: int = 1000, **config: object) -> WindowSampler:
    outbox = Outbox(tmp_path / "box.sqlite", max_messages)
    clock = DeviceClock(ClockConfig(servers=[]))
    settings = SampleUploadConfig.model_validate({"enabled": True, **config})
    return WindowSampler(settings, "pump-1", outbox, clock, axes=AXES, sample_rate_hz=200.0)


def queued(s: WindowSampler) -> list[WindowSample]:
    out = []
    for message in s.outbox.pending(limit=10_000):
        if message.kind == "sample":
            address, sample = decode_topic(message.topic, message.payload)
            assert address.channel == Channel.SAMPLE and isinstance(sample, WindowSample)
            out.append(sample)
    return out


def test_sampling_is_off_by_default(tmp_path: Path) -> None:
    assert DeviceConfig(device_id="d").samples.enabled is False
    s = sampler(tmp_path, every_n_windows=1)
    s.config = SampleUploadConfig()
    assert s.offer(windows(10), [result(i) for i in range(10)], 0.0, "m", "1") == 0
    assert s.outbox.depth() == 0


def test_only_windows_scored_normal_are_sampled(tmp_path: Path) -> None:
    s = sampler(tmp_path, every_n_windows=1)
    batch = [
        result(0, "commissioning", score=None),
        result(1, "alarm", score=0.9, anomaly=True),
        result(2, "alarm", score=0.2),  # under the threshold, but the alarm is still active
        result(3, "normal", score=0.7, anomaly=True),  # one window over the threshold, not yet an alarm
        result(4, "rejected", score=None),
        result(5, "degraded", score=None),
        result(6, "normal", score=0.1),
    ]
    assert s.offer(windows(7), batch, 0.0, "m", "1") == 1
    assert [q.window for q in queued(s)] == [6]


def test_every_nth_normal_window_and_at_most_max_per_hour(tmp_path: Path) -> None:
    s = sampler(tmp_path, every_n_windows=10, max_per_hour=3)
    # 100 normal windows in the first minute: every 10th qualifies, the hourly cap keeps 3
    assert s.offer(windows(100), [result(i) for i in range(100)], 60.0, "m", "1") == 3
    assert [q.window for q in queued(s)] == [9, 19, 29]
    assert s.skipped == {"rate": 7}
    assert s.offer(windows(20), [result(100 + i) for i in range(20)], 3599.0, "m", "1") == 0
    # one hour of sensor time after the first uploads, the budget is back
    assert s.offer(windows(20), [result(200 + i) for i in range(20)], 3660.0, "m", "1") == 2


def test_the_payload_is_the_window_compactly_and_under_the_limit(tmp_path: Path) -> None:
    s = sampler(tmp_path, every_n_windows=1)
    batch = windows(1, length=2048)  # 2048 x 6 int16 = 24 KiB, 32 KiB of base64
    s.offer(batch, [result(41)], 0.0, "vib-ae", "1.2.0")
    (message,) = s.outbox.pending()
    assert len(message.payload) <= MAX_PAYLOAD_BYTES
    (sample,) = queued(s)
    assert (sample.model_id, sample.model_version, sample.window, sample.length) == (
        "vib-ae",
        "1.2.0",
        41,
        2048,
    )
    assert (sample.axes, sample.sample_rate_hz, sample.score, sample.threshold) == (
        list(AXES),
        200.0,
        0.1,
        0.5,
    )
    restored = unpack_base64(sample.data, sample.scale, sample.length)
    assert np.max(np.abs(restored - batch[0]), axis=0) == pytest.approx(
        np.abs(batch[0]).max(axis=0) / 32767 / 2, rel=0.05
    )


def test_samples_never_displace_events_or_telemetry(tmp_path: Path) -> None:
    s = sampler(tmp_path, max_messages=4, every_n_windows=1)
    box = s.outbox
    s.offer(windows(2), [result(0), result(1)], 0.0, "m", "1")
    box.put("t/t", "telemetry", lambda seq: b"{}")
    box.put("t/e", "event", lambda seq: b"{}")
    box.put("t/e", "event", lambda seq: b"{}")  # full: the oldest sample goes first
    assert [m.kind for m in box.pending()] == ["sample", "telemetry", "event", "event"]
    box.put("t/t", "telemetry", lambda seq: b"{}")  # then the other sample
    assert [m.kind for m in box.pending()] == ["telemetry", "event", "event", "telemetry"]
    assert s.offer(windows(1), [result(2)], 0.0, "m", "1") == 0  # full of more important messages
    assert box.depth("sample") == 0 and box.dropped() == {"sample": 3}
    assert s.skipped == {"outbox_full": 1}


def test_at_most_max_pending_samples_wait_in_the_outbox(tmp_path: Path) -> None:
    s = sampler(tmp_path, every_n_windows=1, max_pending=3, max_per_hour=100)
    assert s.offer(windows(10), [result(i) for i in range(10)], 0.0, "m", "1") == 3
    assert s.skipped == {"pending": 7}
    for message in s.outbox.pending():
        s.outbox.ack(message.seq)  # delivered: room again
    assert s.offer(windows(2), [result(10), result(11)], 1.0, "m", "1") == 2


def test_a_device_samples_after_commissioning_only(model_dir: Path, tmp_path: Path) -> None:
    config = DeviceConfig(
        device_id="sampler-1",
        commissioning=CommissioningConfig(windows=60),
        samples=SampleUploadConfig(enabled=True, every_n_windows=5, max_per_hour=1000, max_pending=1000),
        outbox=OutboxConfig(directory=tmp_path),
        clock=ClockConfig(servers=[]),
    )
    device = Device(config, load_model_dir(model_dir), SyntheticSource(seed=12), connect=False)
    try:
        while device.stream_s < 128 * 200 / 200:  # 200 windows of 128 samples at 200 Hz
            device.step(1024)
        samples = [m for m in device.outbox.pending(limit=10_000) if m.kind == "sample"]
        decoded = [decode_topic(m.topic, m.payload)[1] for m in samples]
    finally:
        device.close()
    assert device.mode == "running"
    scored = device.core.windows_seen - 60  # after the 60 commissioning windows
    assert scored >= 130 and 0.9 * scored <= device.sampler.normal_seen <= scored
    assert len(decoded) == device.sampler.normal_seen // 5
    assert all(isinstance(d, WindowSample) and d.window >= 60 for d in decoded)
    assert all(isinstance(d, WindowSample) and d.model_id == device.model_id for d in decoded)
