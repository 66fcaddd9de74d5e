"""Run a camera node: frames in at the configured rate, MQTT link up once provisioned, commands in.

Commands arrive on the link's thread and are queued; they, the local reset button and the frames
are handled on the runner's own thread, so the node is only ever touched from one thread.
"""

import logging
import queue
import threading
import time
from dataclasses import dataclass, field

from edgefleet.contracts import Command, Status, encode
from edgefleet.edge.camera.frames import FrameSource
from edgefleet.edge.camera.node import CameraNode
from edgefleet.edge.config import MqttConfig
from edgefleet.edge.link import MqttLink

log = logging.getLogger(__name__)
RUNTIME_VERSION = "0.1.0"
_RESET = "reset"


@dataclass
class RunnerOptions:
    realtime: bool = True  # pace frames at the source's fps; False runs as fast as possible
    telemetry_interval_s: float = 60.0
    broker_url: str | None = None  # overrides the broker the server gave at provisioning
    drain_timeout_s: float = 10.0  # at the end of a finite source, wait this long for the outbox
    # delivery, resend timeouts, backoff (end-to-end acknowledgement by default, as every device);
    # the URL and credentials come from provisioning
    mqtt: MqttConfig = field(default_factory=MqttConfig)


class CameraRunner:
    def __init__(self, node: CameraNode, source: FrameSource, options: RunnerOptions | None = None) -> None:
        self.node = node
        self.source = source
        self.options = options or RunnerOptions()
        self.link: MqttLink | None = None
        self._inbox: queue.SimpleQueue[Command | str] = queue.SimpleQueue()
        self._last_telemetry = time.monotonic()

    def press_reset_button(self) -> None:
        """The local 'reset network settings' button (CLI flag or signal); thread-safe."""
        self._inbox.put(_RESET)

    def _status_payload(self, state: str) -> bytes:
        node = self.node
        assert node.outbox is not None and node.device_id is not None
        card = node.model.card
        return encode(
            Status(
                device_id=node.device_id,
                seq=node.outbox.allocate_seq(),
                ts=node.clock.now(),
                clock_synced=node.clock.synced,
                state="online" if state == "online" else "offline",
                kind="camera",
                mode=node.mode,
                firmware_version=node.config.firmware_version,
                runtime_version=RUNTIME_VERSION,
                model_id=card.model_id,
                model_version=card.model_version,
            )
        )

    def _ensure_link(self) -> None:
        node = self.node
        if self.link is not None or node.credentials is None or node.outbox is None:
            return
        url = self.options.broker_url or node.credentials.broker_url
        if url is None:
            log.error("%s: no broker URL (none from the server, none given); staying offline", node.device_id)
            return
        config = MqttConfig.model_validate(
            {
                **self.options.mqtt.model_dump(),
                "url": url,
                "username": node.credentials.username,
                "password": node.credentials.password,
            }
        )
        self.link = MqttLink(
            node.credentials.device_id, config, node.outbox, self._status_payload, self._inbox.put
        )
        self.link.start()

    def _drop_link(self) -> None:
        if self.link is not None:
            self.link.stop(graceful=True)
            self.link = None

    def _handle_inbox(self) -> None:
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if item == _RESET or (isinstance(item, Command) and item.command == "reset_network"):
                self._drop_link()
                self.node.reset_network()
            elif isinstance(item, Command):
                self.node.handle_command(item)
                if item.command == "publish_status" and self.link:
                    self.link.publish_status()

    def _maybe_telemetry(self) -> None:
        now = time.monotonic()
        interval = now - self._last_telemetry
        if interval >= self.options.telemetry_interval_s:
            self.node.put_telemetry(interval)
            self._last_telemetry = now

    def run(self, stop: threading.Event | None = None, max_frames: int | None = None) -> int:
        """Process frames until the source ends, `stop` is set or `max_frames`; returns frames seen."""
        stop = stop or threading.Event()
        period = 1.0 / self.source.fps
        seen = 0
        next_due = time.monotonic()
        try:
            for frame in self.source.frames():
                if stop.is_set() or (max_frames is not None and seen >= max_frames):
                    break
                self._handle_inbox()
                self.node.process(frame)
                seen += 1
                self._ensure_link()
                self._maybe_telemetry()
                if self.link:
                    self.link.notify()
                if self.options.realtime:
                    next_due += period
                    stop.wait(max(0.0, next_due - time.monotonic()))
            self._handle_inbox()
            self._drain()
        finally:
            self._drop_link()
        return seen

    def _drain(self) -> None:
        """Give the link time to deliver what is queued before a finite run ends (a message leaves
        the outbox when the server acknowledges it; what is left is sent by the next run)."""
        outbox = self.node.outbox
        if self.link is None or outbox is None:
            return
        deadline = time.monotonic() + self.options.drain_timeout_s
        self.link.notify()
        while outbox.depth() and time.monotonic() < deadline:
            time.sleep(0.05)
