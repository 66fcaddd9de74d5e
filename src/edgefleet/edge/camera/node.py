"""The camera node: provisioning by QR code, then person detection reported through the outbox.

Provisioning: every frame is scanned for a QR code; a valid edgefleet code is stored (the
simulated Wi-Fi join), its claim token is exchanged once for MQTT credentials, and the node
starts detecting. A malformed, truncated or foreign code is rejected with a reason and the node
stays in provisioning. `reset_network()` (a `reset_network` command or the local button) wipes the
stored settings and credentials and returns to provisioning.
"""

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgefleet.contracts import Channel, Command, DeviceMode, Event, Telemetry, encode, topic_for
from edgefleet.contracts.provisioning import ProvisioningPayload
from edgefleet.edge.camera.detector import DetectionConfig, PresenceTracker
from edgefleet.edge.camera.person import PersonModel
from edgefleet.edge.camera.thumbnail import jpeg_thumbnail
from edgefleet.edge.clock import DeviceClock
from edgefleet.edge.outbox import Outbox
from edgefleet.edge.provisioning import (
    DeviceCredentials,
    NetworkSettings,
    ProvisioningError,
    SettingsStore,
    decode_payload,
)
from edgefleet.edge.provisioning.claim import claim_credentials
from edgefleet.edge.provisioning.qr import scan_frame

log = logging.getLogger(__name__)
Claimer = Callable[[ProvisioningPayload], DeviceCredentials]
_HOUR_S = 3600.0


@dataclass
class CameraConfig:
    state_dir: Path
    firmware_version: str = "0.1.0"
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    send_thumbnail: bool = False
    thumbnail_max_side: int = 160


@dataclass
class ProvisioningReport:
    """What the node did with the codes it saw (for logs, tests and the CLI)."""

    rejected: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None


class CameraNode:
    def __init__(
        self,
        config: CameraConfig,
        model: PersonModel,
        clock: DeviceClock | None = None,
        claimer: Claimer = claim_credentials,
    ) -> None:
        self.config = config
        self.model = model
        self.clock = clock or DeviceClock()
        self.claimer = claimer
        self.store = SettingsStore(config.state_dir)
        self.network, self.credentials = self.store.load()
        self.provisioning = ProvisioningReport()
        # The card's threshold unless the config sets one (else 0.6): the firmware's rule.
        card_threshold = model.card.threshold.value if model.card.threshold is not None else None
        self.detection = config.detection.for_card(card_threshold)
        self.tracker = PresenceTracker(self.detection)
        self.outbox: Outbox | None = None
        self.frames = 0
        self._interval_frames = 0
        self._invoke_us: list[float] = []
        self._detections: deque[float] = deque()
        if self.credentials:
            self._open_outbox()

    @property
    def mode(self) -> DeviceMode:
        return "running" if self.credentials else "provisioning"

    @property
    def device_id(self) -> str | None:
        return self.credentials.device_id if self.credentials else None

    def _open_outbox(self) -> None:
        if self.outbox is None:
            self.outbox = Outbox(self.config.state_dir / "outbox.sqlite3")

    def process(self, frame: np.ndarray) -> None:
        """Handle one frame in the current mode."""
        if self.mode == "provisioning":
            self._provision_from(frame)
        else:
            self._detect(frame)

    def _provision_from(self, frame: np.ndarray) -> None:
        for text in scan_frame(frame if frame.ndim == 2 else frame.mean(axis=2).astype(np.uint8)):
            try:
                payload = decode_payload(text)
                credentials = self.claimer(payload)
            except ProvisioningError as err:
                self.provisioning.rejected[err.reason] = self.provisioning.rejected.get(err.reason, 0) + 1
                self.provisioning.last_error = str(err)
                log.warning("provisioning code rejected (%s): %s", err.reason, err)
                continue
            self.network = NetworkSettings(
                payload.ssid, payload.passphrase, payload.security, payload.hidden, payload.server_url
            )
            self.credentials = credentials
            self.store.save(self.network, credentials)
            self._open_outbox()
            log.info("provisioned as %s on network %r", credentials.device_id, payload.ssid)
            return

    def _detect(self, frame: np.ndarray) -> None:
        score = self.model.score(frame)
        self.frames += 1
        self._interval_frames += 1
        self._invoke_us.append(self.model.last_invoke_us)
        transition = self.tracker.update(score)
        if transition is None:
            return
        thumbnail = None
        if transition == "raised":
            self._detections.append(self.clock.uptime_s())
            if self.config.send_thumbnail:
                thumbnail = jpeg_thumbnail(frame, self.config.thumbnail_max_side)
        self._put_event(score, active=transition == "raised", thumbnail=thumbnail)

    def _put_event(self, score: float, active: bool, thumbnail: str | None) -> None:
        assert self.outbox is not None and self.device_id is not None
        device_id, ts, synced = self.device_id, self.clock.now(), self.clock.synced
        smoothed = self.tracker.smoothed if self.tracker.smoothed is not None else score

        def build(seq: int) -> bytes:
            return encode(
                Event(
                    device_id=device_id,
                    seq=seq,
                    ts=ts,
                    clock_synced=synced,
                    kind="person",
                    active=active,
                    severity="info",
                    score=round(smoothed, 4),
                    threshold=self.tracker.threshold_on,
                    person_count=1 if active else 0,
                    thumbnail_jpeg=thumbnail,
                )
            )

        self.outbox.put(topic_for(device_id, Channel.EVENT), "event", build)

    def detections_per_hour(self) -> float:
        now = self.clock.uptime_s()
        while self._detections and now - self._detections[0] > _HOUR_S:
            self._detections.popleft()
        return float(len(self._detections)) * _HOUR_S / max(min(now, _HOUR_S), 1.0)

    def put_telemetry(self, interval_s: float) -> None:
        """Queue a telemetry summary of the frames since the last one."""
        if self.outbox is None or self.device_id is None:
            return
        device_id, outbox = self.device_id, self.outbox
        invoke = float(np.mean(self._invoke_us)) if self._invoke_us else None
        message = {
            "device_id": device_id,
            "ts": self.clock.now(),
            "clock_synced": self.clock.synced,
            "mode": self.mode,
            "uptime_s": self.clock.uptime_s(),
            "interval_s": interval_s,
            "windows": self._interval_frames,
            "inference_us": invoke,
            "arena_bytes": self.model.backend.arena_bytes,
            "outbox_depth": outbox.depth(),
            "outbox_dropped": sum(outbox.dropped().values()),
            "outbox_errors": outbox.errors,
            "detections_per_hour": self.detections_per_hour(),
            "firmware_version": self.config.firmware_version,
        }
        outbox.put(
            topic_for(device_id, Channel.TELEMETRY),
            "telemetry",
            lambda seq: encode(Telemetry(seq=seq, **message)),  # type: ignore[arg-type]
        )
        self._interval_frames = 0
        self._invoke_us.clear()

    def handle_command(self, command: Command) -> None:
        if command.command == "reset_network":
            self.reset_network()

    def reset_network(self) -> None:
        """Wipe network settings and credentials; back to provisioning."""
        self.store.wipe()
        self.network = self.credentials = None
        if self.outbox is not None:
            self.outbox.close()
            self.outbox = None
        self.tracker = PresenceTracker(self.detection)
        log.info("network settings wiped; waiting for a provisioning code")
