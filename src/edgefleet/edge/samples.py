"""Sampled raw windows for retraining: a few windows the device scored normal, uploaded on `sample`.

Off by default. When enabled, the device considers every `every_n_windows`-th window it scored as
normal (running mode only: never while commissioning, in alarm, or over the threshold), and queues
it at most `max_per_hour` times per hour of sensor time. Each one is packed as int16 with one scale
per axis (`dsp.window_codec`), far below the payload limit. In the outbox samples have the lowest
priority: a full outbox drops them before telemetry and events, and at most `max_pending` of them
wait there, so an offline device does not fill its storage with them.
"""

import logging
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgefleet.contracts import Channel, WindowSample, encode, topic_for
from edgefleet.dsp.window_codec import pack_base64
from edgefleet.edge.clock import DeviceClock
from edgefleet.edge.outbox import Outbox

if TYPE_CHECKING:  # edge.config imports this module for SampleUploadConfig; pipeline imports config
    from edgefleet.edge.pipeline import WindowResult

log = logging.getLogger(__name__)
HOUR_S = 3600.0


class SampleUploadConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    every_n_windows: int = Field(default=50, ge=1, description="consider every N-th normal window")
    max_per_hour: int = Field(default=30, ge=1, le=3600, description="of sensor time, sliding window")
    max_pending: int = Field(default=50, ge=1, description="samples waiting in the outbox at most")


class WindowSampler:
    """Decides which windows to upload and queues them in the outbox."""

    def __init__(
        self,
        config: SampleUploadConfig,
        device_id: str,
        outbox: Outbox,
        clock: DeviceClock,
        *,
        axes: Sequence[str],
        sample_rate_hz: float,
    ) -> None:
        self.config = config
        self.device_id = device_id
        self.outbox = outbox
        self.clock = clock
        self.axes = list(axes)
        self.sample_rate_hz = sample_rate_hz
        self._topic = topic_for(device_id, Channel.SAMPLE)
        self.normal_seen = 0
        self._sent_at: deque[float] = deque()
        self.queued = 0
        self.skipped: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def _skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    @staticmethod
    def eligible(result: "WindowResult") -> bool:
        """Scored by the model, under the threshold, and the device not in alarm."""
        return (
            result.state == "normal"
            and not result.anomaly
            and result.score is not None
            and result.threshold is not None
            and result.score <= result.threshold
        )

    def offer(
        self,
        windows: np.ndarray,
        results: Sequence["WindowResult"],
        stream_s: float,
        model_id: str | None,
        model_version: str | None,
    ) -> int:
        """Consider a processed batch (`windows[i]` decided `results[i]`); returns how many were queued."""
        if not self.config.enabled or len(results) != len(windows):  # no results: a failed batch
            return 0
        queued = 0
        for window, result in zip(windows, results, strict=True):
            if not self.eligible(result):
                continue
            self.normal_seen += 1
            if self.normal_seen % self.config.every_n_windows:
                continue
            while self._sent_at and stream_s - self._sent_at[0] >= HOUR_S:
                self._sent_at.popleft()
            if len(self._sent_at) >= self.config.max_per_hour:
                self._skip("rate")
                continue
            if self.outbox.depth("sample") >= self.config.max_pending:
                self._skip("pending")
                continue
            if self._queue(np.asarray(window), result, model_id, model_version):
                self._sent_at.append(stream_s)
                queued += 1
        self.queued += queued
        return queued

    def _queue(
        self, window: np.ndarray, result: "WindowResult", model_id: str | None, model_version: str | None
    ) -> bool:
        try:
            scale, data = pack_base64(window)
        except ValueError as err:  # the guards reject non-finite windows; never crash on one
            log.warning("%s: window %d not sampled: %s", self.device_id, result.window, err)
            self._skip("unpackable")
            return False

        def build(seq: int) -> bytes:
            return encode(
                WindowSample(
                    device_id=self.device_id,
                    seq=seq,
                    ts=self.clock.now(),
                    clock_synced=self.clock.synced,
                    model_id=model_id,
                    model_version=model_version,
                    window=result.window,
                    sample_rate_hz=self.sample_rate_hz,
                    axes=self.axes,
                    length=int(window.shape[0]),
                    scale=scale,
                    data=data,
                    score=result.score,
                    threshold=result.threshold,
                )
            )

        if self.outbox.put(self._topic, "sample", build) is None:
            self._skip("outbox_full")
            return False
        return True
