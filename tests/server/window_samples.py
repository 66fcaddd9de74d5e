"""Sampled raw windows (`WindowSample`) for server and retraining tests, written through real ingest."""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import numpy as np

from edgefleet.contracts import Channel, WindowSample, encode, topic_for
from edgefleet.dsp.window_codec import pack_base64
from edgefleet.server.ingest import IngestStore, Received, WriteResult

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
AXES = ["ax", "ay", "az", "gx", "gy", "gz"]


def window_sample(
    device_id: str,
    seq: int,
    window: np.ndarray | None = None,
    *,
    ts: datetime | None = None,
    model_id: str = "vib-ae",
    model_version: str = "1.0.0",
    axes: list[str] | None = None,
    sample_rate_hz: float = 200.0,
) -> WindowSample:
    values = np.random.default_rng(seq).normal(0, 0.1, (128, 6)) if window is None else window
    scale, data = pack_base64(values)
    return WindowSample(
        device_id=device_id,
        seq=seq,
        ts=ts or T0 + timedelta(seconds=seq),
        model_id=model_id,
        model_version=model_version,
        window=seq * 10,
        sample_rate_hz=sample_rate_hz,
        axes=axes or AXES[: values.shape[1]],
        length=values.shape[0],
        scale=scale,
        data=data,
        score=0.1,
        threshold=0.5,
    )


def received(sample: WindowSample) -> Received:
    return Received(topic_for(sample.device_id, Channel.SAMPLE), encode(sample))


def ingest(store: IngestStore, samples: Iterable[WindowSample]) -> WriteResult:
    return store.write([received(s) for s in samples])
