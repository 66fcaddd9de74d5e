"""Two camera nodes replaying scikit-image's sample photos (public domain) through the real TFLM
person-detection model, with a thumbnail on each person event.

They are pre-provisioned: the demo writes their network settings and credentials into each node's
settings store, as the QR code and claim exchange would have (docs/camera-node.md shows that path).
"""

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgefleet.cli.demo.seed import DeviceSpec
from edgefleet.edge.backends.tflm import TflmBackend
from edgefleet.edge.camera import CameraConfig, CameraNode, ListSource, PersonModel
from edgefleet.edge.camera.runner import CameraRunner, RunnerOptions
from edgefleet.edge.clock import ClockConfig, DeviceClock
from edgefleet.edge.model import load_model_dir
from edgefleet.edge.provisioning import DeviceCredentials, NetworkSettings, SettingsStore

log = logging.getLogger(__name__)
CAMERAS = (
    DeviceSpec("demo-cam-01", "Entrance camera", "camera"),
    DeviceSpec("demo-cam-02", "Loading dock camera", "camera"),
)
# (skimage.data image, frames at 1 frame/s). `astronaut` and `camera` (the cameraman) show a
# person (the model scores them 0.87 and 0.95); the others do not (0.07-0.13).
PLAYLISTS: dict[str, tuple[tuple[str, int], ...]] = {
    "demo-cam-01": (("coffee", 8), ("astronaut", 4), ("coins", 8), ("camera", 3), ("clock", 7)),
    "demo-cam-02": (("chelsea", 14), ("camera", 5), ("page", 14), ("checkerboard", 12)),
}
FPS = 1.0
TELEMETRY_INTERVAL_S = 10.0


def frames_problem() -> str | None:
    """Why the sample photos cannot be had, if they cannot."""
    try:
        import skimage.data  # noqa: F401
    except ImportError:
        return "scikit-image is not installed (pip install 'edgefleet[demo]'), so no camera nodes"
    return None


def camera_frames(playlist: tuple[tuple[str, int], ...]) -> list[np.ndarray]:
    """The photos as uint8 grayscale or RGB frames, each repeated as a camera would see it."""
    import skimage.data

    frames: list[np.ndarray] = []
    for name, count in playlist:
        image = np.asarray(getattr(skimage.data, name)())
        if image.ndim == 3 and image.shape[2] == 4:
            image = image[..., :3]
        frames += [np.ascontiguousarray(image, dtype=np.uint8)] * count
    return frames


def known_secret(state_dir: Path) -> str | None:
    """The secret the node holds from an earlier run (its own settings store)."""
    _, credentials = SettingsStore(state_dir).load()
    return credentials.password if credentials else None


def provision(state_dir: Path, device_id: str, secret: str, server_url: str, broker_url: str) -> None:
    network = NetworkSettings("edgefleet-demo", "", "nopass", False, server_url)
    SettingsStore(state_dir).save(network, DeviceCredentials(device_id, device_id, secret, broker_url))


@dataclass
class CameraRow:
    device_id: str
    mode: str
    connected: bool
    frames: int
    present: bool


class CameraFleet:
    """Camera nodes, each on its own thread with its own interpreter."""

    def __init__(self, model_dir: Path, state_root: Path, broker_url: str, speed: float = 1.0) -> None:
        bundle = load_model_dir(model_dir)
        fps = min(FPS * speed, 10.0)
        self.runners: list[CameraRunner] = []
        for spec in CAMERAS:
            config = CameraConfig(state_dir=state_root / spec.id, send_thumbnail=True)
            clock = DeviceClock(ClockConfig(enabled=False))
            node = CameraNode(config, PersonModel(bundle, TflmBackend(bundle)), clock=clock)
            source = ListSource(camera_frames(PLAYLISTS[spec.id]), fps=fps, repeat=1_000_000)
            options = RunnerOptions(
                broker_url=broker_url,  # this run's broker port, whatever the stored settings say
                telemetry_interval_s=TELEMETRY_INTERVAL_S,
                drain_timeout_s=2.0,
            )
            self.runners.append(CameraRunner(node, source, options))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, stagger_s: float = 0.0) -> None:
        """One thread per node; each connects on its first frame, `stagger_s` after the one before."""
        for i, runner in enumerate(self.runners):
            if i and stagger_s > 0:
                time.sleep(stagger_s)
            name = f"camera-{runner.node.device_id}"
            thread = threading.Thread(target=self._run, args=(runner,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self, runner: CameraRunner) -> None:
        try:
            runner.run(stop=self._stop)
        except Exception:  # the top of a long-running thread: log it, the rest of the demo goes on
            log.exception("camera node %s stopped", runner.node.device_id)

    def close(self) -> None:
        """Stop the frames; each runner drains briefly and says `offline` on its way out."""
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    def rows(self) -> list[CameraRow]:
        return [
            CameraRow(
                r.node.device_id or "-",
                r.node.mode,
                bool(r.link and r.link.connected.is_set()),
                r.node.frames,
                r.node.tracker.present,
            )
            for r in self.runners
        ]
