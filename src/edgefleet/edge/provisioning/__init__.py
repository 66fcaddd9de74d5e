"""Wi-Fi provisioning by QR code: payload format, rendering, scanning, storage, claim exchange."""

from edgefleet.contracts.provisioning import (
    ProvisioningError,
    ProvisioningPayload,
    decode_payload,
    encode_payload,
    escape,
)
from edgefleet.edge.provisioning.store import DeviceCredentials, NetworkSettings, SettingsStore

__all__ = [
    "DeviceCredentials",
    "NetworkSettings",
    "ProvisioningError",
    "ProvisioningPayload",
    "SettingsStore",
    "decode_payload",
    "encode_payload",
    "escape",
]
