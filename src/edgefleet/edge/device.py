"""A device: source -> window -> DeviceCore -> outbox -> MQTT, with its clock and telemetry."""

import logging
import queue
import threading
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import ValidationError

from edgefleet.contracts import Channel, Command, Event, OtaState, Status, Telemetry, encode, topic_for
from edgefleet.edge.clock import DeviceClock
from edgefleet.edge.config import DeviceConfig
from edgefleet.edge.decision import SimulatedGpio
from edgefleet.edge.errors import EdgeError
from edgefleet.edge.link import MqttLink
from edgefleet.edge.model import ModelBundle
from edgefleet.edge.ota import DeviceProfile, DownloadOptions, OtaAgent, StateReport
from edgefleet.edge.outbox import Outbox
from edgefleet.edge.pipeline import DeviceCore, EventDraft, WindowResult, default_sensor
from edgefleet.edge.samples import WindowSampler
from edgefleet.edge.sources import SampleSource
from edgefleet.edge.windowing import Windower

log = logging.getLogger(__name__)


def _runtime_version() -> str:
    try:
        return version("edgefleet")
    except PackageNotFoundError:
        return "0.0.0+unknown"


RUNTIME_VERSION = _runtime_version()


class Device:
    """One device. `connect=False` keeps everything local (the outbox still fills)."""

    def __init__(
        self,
        config: DeviceConfig,
        model: ModelBundle | None,
        source: SampleSource,
        *,
        clock: DeviceClock | None = None,
        connect: bool = True,
        gpio: SimulatedGpio | None = None,
    ) -> None:
        self.config = config
        self.device_id = config.device_id
        self.source = source
        self.outbox = Outbox(
            Path(config.outbox.directory) / f"{config.device_id}.sqlite", config.outbox.max_messages
        )
        self.clock = clock or DeviceClock(config.clock)
        self.ota = self._make_ota(model) if config.ota.enabled else None
        self.core = self._boot_core(model, gpio)
        self.windower = Windower(self.core.window, self.core.hop, len(source.axes))
        self.sampler = WindowSampler(  # sampled normal windows for retraining (off unless enabled)
            config.samples,
            self.device_id,
            self.outbox,
            self.clock,
            axes=source.axes,
            sample_rate_hz=self.core.sample_rate_hz,
        )
        self.commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self.link = (
            MqttLink(
                config.device_id,
                config.mqtt,
                self.outbox,
                self._status_payload,
                self.commands.put,
                on_ota_command=self.ota.submit if self.ota else None,
            )
            if connect
            else None
        )
        self.samples_read = 0
        self.events_created: list[int] = []
        self._telemetry_due = config.telemetry_interval_s
        self._last_telemetry_stream_s = 0.0
        self._lock = threading.Lock()
        self.finished = False
        self._last_mode = self.core.mode

    # -- over-the-air model updates ----------------------------------------------------------------

    def _make_ota(self, factory: ModelBundle | None) -> OtaAgent:
        config = self.config
        sensor = factory.card.sensor if factory and factory.card.sensor else default_sensor()
        profile = DeviceProfile(
            kind="vibration",
            axes=tuple(self.source.axes),
            units=tuple(sensor.units),
            sample_rate_hz=float(self.source.sample_rate_hz),
            runtime_version=RUNTIME_VERSION,
            backend=config.backend,
            arena_bytes=config.arena_bytes,
        )
        password = config.mqtt.password.get_secret_value() if config.mqtt.password else None
        download = DownloadOptions(
            username=config.mqtt.username or config.device_id,
            password=password,
            attempts=config.ota.download_attempts,
            timeout_s=config.ota.download_timeout_s,
            backoff_min_s=config.ota.backoff_min_s,
            backoff_max_s=config.ota.backoff_max_s,
        )
        directory = config.ota.directory_for(config.device_id)
        return OtaAgent(config.ota, directory, profile, self._emit_ota_state, download)

    def _boot_core(self, factory: ModelBundle | None, gpio: SimulatedGpio | None) -> DeviceCore:
        """The core on the model the OTA journal says is active (the factory model without OTA)."""
        if self.ota is None:
            return DeviceCore(self.config, factory, gpio=gpio)
        bundle = self.ota.boot(factory)
        while True:
            try:
                core = DeviceCore(self.config, bundle, gpio=gpio)
                break
            except EdgeError as err:
                if self.ota.active_slot is None:
                    raise
                bundle = self.ota.boot_failed(err)
        self.ota.swap = self._swap_model
        return core

    def _swap_model(self, bundle: ModelBundle | None) -> None:
        """Run another model from the next window on (called on the device thread by the agent)."""
        self.core.swap_model(bundle)
        if (self.windower.window, self.windower.hop) != (self.core.window, self.core.hop):
            self.windower = Windower(self.core.window, self.core.hop, len(self.source.axes))
        if self.link:
            self.link.publish_status()

    def _emit_ota_state(self, report: StateReport) -> None:
        def build(seq: int) -> bytes:
            return encode(
                OtaState(
                    device_id=self.device_id,
                    seq=seq,
                    ts=self.clock.now(),
                    clock_synced=self.clock.synced,
                    state=report.state,
                    rollout_id=report.rollout_id,
                    model_id=report.model_id,
                    model_version=report.model_version,
                    active_slot=report.active_slot,
                    progress=report.progress,
                    reason=report.reason,
                )
            )

        self.outbox.put(topic_for(self.device_id, Channel.OTA_STATE), "ota_state", build)
        link = getattr(self, "link", None)  # boot reports come before the link exists
        if link is not None:
            link.notify()

    # -- messages --------------------------------------------------------------------------------

    @property
    def model_id(self) -> str | None:
        return self.core.card.model_id if self.core.card else None

    @property
    def model_version(self) -> str | None:
        return self.core.card.model_version if self.core.card else None

    def _status_payload(self, state: str) -> bytes:
        status = Status(
            device_id=self.device_id,
            seq=self.outbox.allocate_seq(),
            ts=self.clock.now(),
            clock_synced=self.clock.synced,
            state="online" if state == "online" else "offline",
            kind="vibration",
            mode=self.core.mode,
            firmware_version=self.config.firmware_version,
            runtime_version=RUNTIME_VERSION,
            model_id=self.model_id,
            model_version=self.model_version,
        )
        return encode(status)

    def _emit_event(self, draft: EventDraft) -> None:
        def build(seq: int) -> bytes:
            return encode(
                Event(
                    device_id=self.device_id,
                    seq=seq,
                    ts=self.clock.now(),
                    clock_synced=self.clock.synced,
                    kind=draft.kind,
                    active=draft.active,
                    severity=draft.severity,
                    score=draft.score,
                    threshold=draft.threshold,
                    window=draft.window,
                    features=draft.features,
                    reason=draft.reason,
                    message=draft.message[:256] if draft.message else None,
                    explanation=draft.explanation,
                    commissioning=draft.commissioning,
                    model_id=self.model_id,
                    model_version=self.model_version,
                )
            )

        seq = self.outbox.put(topic_for(self.device_id, Channel.EVENT), "event", build)
        if seq is not None:
            self.events_created.append(seq)
        log.info(
            "%s: %s event %s (%s)",
            self.device_id,
            draft.kind,
            "raised" if draft.active else "cleared",
            draft.reason or draft.message,
        )

    def _emit_telemetry(self, interval_s: float) -> None:
        core = self.core
        summary = core.stats.summary()
        core.stats = type(core.stats)()
        rejected = core.rejects.take_interval()
        dropped = self.outbox.dropped()
        depth = self.outbox.depth()
        errors = self.outbox.errors
        scorer = core.scorer
        report = core.baseline.report

        def build(seq: int) -> bytes:
            return encode(
                Telemetry(
                    device_id=self.device_id,
                    seq=seq,
                    ts=self.clock.now(),
                    clock_synced=self.clock.synced,
                    mode=core.mode,
                    uptime_s=self.clock.uptime_s(),
                    interval_s=max(interval_s, 1e-3),
                    windows=int(summary["windows"] or 0),
                    anomaly_rate=summary["anomaly_rate"],
                    score_p50=summary["score_p50"],
                    score_p95=summary["score_p95"],
                    score_max=summary["score_max"],
                    threshold=core.threshold,
                    inference_us=summary["inference_us"],
                    arena_bytes=scorer.backend.arena_bytes if scorer else None,
                    rejected=rejected,
                    outbox_depth=depth,
                    outbox_dropped=sum(dropped.values()),
                    outbox_errors=errors,
                    drift=core.drift.value,
                    commissioning=report.status if report else None,
                    fault_visibility=report.fault_visibility if report else None,
                    firmware_version=self.config.firmware_version,
                    model_id=self.model_id,
                    model_version=self.model_version,
                )
            )

        self.outbox.put(topic_for(self.device_id, Channel.TELEMETRY), "telemetry", build)

    # -- the loop --------------------------------------------------------------------------------

    @property
    def stream_s(self) -> float:
        return self.samples_read / self.core.sample_rate_hz

    def start(self, sync_clock: bool = True) -> None:
        if sync_clock:
            self.clock.sync()
        if self.link:
            self.link.start()
        if self.ota:
            self.ota.start()

    def handle_command(self, command: Command) -> None:
        log.info("%s: command %s (%s)", self.device_id, command.command, command.command_id)
        if command.command == "recommission":
            windows = command.args.get("windows")
            try:
                self.core.recommission(int(windows) if isinstance(windows, int | float) else None)
            except ValidationError as err:
                log.warning("%s: recommission refused: %s", self.device_id, err.errors()[0]["msg"])
            if self.link:
                self.link.publish_status()
        elif command.command == "publish_status" and self.link:
            self.link.publish_status()
        else:
            log.info("%s: command %s needs no action in the software twin", self.device_id, command.command)

    def step(self, max_samples: int = 128) -> list[WindowResult]:
        """Read what the source has (up to `max_samples`), decide, queue messages."""
        while not self.commands.empty():
            self.handle_command(self.commands.get_nowait())
        if self.ota:
            self.ota.service()
        chunk = self.source.read(max_samples)
        if chunk is None:
            self.finished = True
            return []
        self.samples_read += len(chunk)
        pairs = self.windower.push(chunk.samples, chunk.timestamps)
        results: list[WindowResult] = []
        if pairs:
            windows = np.stack([w for w, _ in pairs])
            stamps = np.stack([t for _, t in pairs])
            try:
                results = self.core.process(windows, stamps)
            except Exception as err:
                if self.ota is None or not self.ota.pending:
                    raise
                self.ota.health_failed(f"inference_error: {err}")  # a new model failing: roll back
                results = []
            if self.ota:
                self.ota.after_windows(results)
            self.sampler.offer(windows, results, self.stream_s, self.model_id, self.model_version)
            for result in results:
                for draft in result.events:
                    self._emit_event(draft)
        if self.stream_s >= self._telemetry_due:
            self._emit_telemetry(self.stream_s - self._last_telemetry_stream_s)
            self._last_telemetry_stream_s = self.stream_s
            self._telemetry_due = self.stream_s + self.config.telemetry_interval_s
        if self.link and (results or pairs):
            self.link.notify()
        if self.core.mode != self._last_mode:  # e.g. commissioning finished: say so on `status`
            self._last_mode = self.core.mode
            if self.link:
                self.link.publish_status()
        self.clock.maybe_resync()
        return results

    def run(
        self,
        stop: threading.Event,
        speed: float = 1.0,
        tick_s: float = 0.1,
        max_stream_s: float | None = None,
    ) -> None:
        """Run until `stop` (or the source ends), pacing the source at `speed` x real time.

        A live source (a serial port) sets its own pace: everything it delivers is read at once.
        """
        if getattr(self.source, "live", False):
            self._run_live(stop, max_stream_s)
            return
        t0 = time.monotonic()
        while not stop.is_set() and not self.finished:
            due = int((time.monotonic() - t0) * speed * self.core.sample_rate_hz)
            while self.samples_read < due and not self.finished and not stop.is_set():
                try:
                    self.step(min(due - self.samples_read, 1024))
                except Exception:  # the top of a long-running loop: log, keep the device alive
                    log.exception("%s: step failed; retrying", self.device_id)
                    stop.wait(1.0)
                    break
            if max_stream_s is not None and self.stream_s >= max_stream_s:
                break
            stop.wait(tick_s)

    def _run_live(self, stop: threading.Event, max_stream_s: float | None) -> None:
        while not stop.is_set() and not self.finished:
            if max_stream_s is not None and self.stream_s >= max_stream_s:
                break
            try:
                self.step(1024)  # the source's read timeout paces this loop
            except Exception:  # the top of a long-running loop: log, keep the device alive
                log.exception("%s: step failed; retrying", self.device_id)
                stop.wait(1.0)

    def close(self, graceful: bool = True) -> None:
        if self.ota:
            self.ota.stop()
        if self.link:
            self.link.stop(graceful=graceful)
        self.source.close()
        self.outbox.close()

    @property
    def mode(self) -> Literal["commissioning", "running", "degraded"]:
        return self.core.mode
