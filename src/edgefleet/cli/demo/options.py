"""What a demo run is asked to do, where it keeps its state, and the one error it reports."""

from dataclasses import dataclass
from pathlib import Path

# Demo mode runs with demo-grade secrets: it listens on the loopback interface only, never on a network.
HOST = "127.0.0.1"


class DemoError(Exception):
    """A problem the person running the demo can fix; the message says how."""


@dataclass(frozen=True)
class DemoOptions:
    home: Path
    """The demo home: database, credentials, trained model, device outboxes."""
    port: int = 8000
    """HTTP port (0: any free one)."""
    mqtt_port: int = 1884
    """Port of the embedded MQTT broker (0: any free one). 1883 is usually a system Mosquitto."""
    devices: int = 12
    cameras: bool = True
    speed: float = 1.0
    """Sensor time runs this many times faster than real time (faults come sooner)."""
    duration_s: float | None = None
    """Stop by itself after this many seconds; None runs until Ctrl-C."""
    faults: str | None = None
    """Fleet fault spec (`GLOB=FAULT@S[xSEV],...;...`); None: the demo's schedule."""
    train_config: Path | None = None
    """Training config of the vibration model; None: the one shipped with the package."""
    shared: Path = Path("../shared")
    """EDGEFLEET_SHARED: where a local copy of the person-detection model may be."""

    def __post_init__(self) -> None:
        if self.devices < 1:
            raise DemoError("--devices must be at least 1")
        if self.speed <= 0:
            raise DemoError("--speed must be positive")
        if self.duration_s is not None and self.duration_s <= 0:
            raise DemoError("--duration must be positive")
        for name, port in (("--port", self.port), ("--mqtt-port", self.mqtt_port)):
            if not 0 <= port <= 65535:
                raise DemoError(f"{name} must be a TCP port (0-65535), not {port}")


@dataclass(frozen=True)
class DemoPaths:
    home: Path

    @property
    def database(self) -> Path:
        return self.home / "edgefleet.db"

    @property
    def state(self) -> Path:
        return self.home / "state.json"

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def outbox(self) -> Path:
        return self.home / "outbox"

    @property
    def cameras(self) -> Path:
        return self.home / "cameras"

    def create(self) -> None:
        try:
            for path in (self.home, self.models, self.outbox, self.cameras):
                path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DemoError(
                f"cannot create the demo home {self.home}: {err.strerror}; use --home DIR"
            ) from err
