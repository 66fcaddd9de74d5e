"""The device's non-volatile settings (a JSON file standing in for NVS): network and credentials."""

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from edgefleet.edge.errors import EdgeError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NetworkSettings:
    ssid: str
    passphrase: str
    security: str
    hidden: bool
    server_url: str


@dataclass(frozen=True)
class DeviceCredentials:
    device_id: str
    username: str
    password: str
    broker_url: str | None


class SettingsStore:
    """Atomic writes, owner-only permissions; a corrupt file reads as "not provisioned"."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / "provisioning.json"

    def load(self) -> tuple[NetworkSettings | None, DeviceCredentials | None]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            network = NetworkSettings(**data["network"]) if data.get("network") else None
            credentials = DeviceCredentials(**data["credentials"]) if data.get("credentials") else None
        except FileNotFoundError:
            return None, None
        except (OSError, ValueError, TypeError, KeyError) as err:
            log.warning("ignoring unreadable settings %s: %s", self.path, err)
            return None, None
        return network, credentials

    def save(self, network: NetworkSettings, credentials: DeviceCredentials | None) -> None:
        data = {"network": asdict(network), "credentials": asdict(credentials) if credentials else None}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(self.path)
        except OSError as err:
            raise EdgeError(f"cannot write settings {self.path}: {err.strerror}") from err

    def wipe(self) -> None:
        """Forget network settings and credentials (the 'reset network settings' action)."""
        self.path.unlink(missing_ok=True)
