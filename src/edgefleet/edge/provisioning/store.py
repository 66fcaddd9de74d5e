"""The device's non-volatile settings (a JSON file standing in for NVS): network and credentials.

The credentials include the organization's model-signing public key from the claim response,
which the device then trusts for over-the-air model updates (`trusted_keys`).
"""

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import ValidationError

from edgefleet.edge.config import TrustedKey
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
    ota_key_id: str | None = None
    ota_public_key: str | None = None

    def trusted_keys(self) -> list[TrustedKey]:
        """The OTA signing key learnt at the claim (none if the server sent none, or a bad one)."""
        if not self.ota_key_id or not self.ota_public_key:
            return []
        try:
            return [TrustedKey(key_id=self.ota_key_id, public_key=self.ota_public_key)]
        except ValidationError as err:
            log.warning("ignoring the OTA key from the claim: %s", err)
            return []


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
