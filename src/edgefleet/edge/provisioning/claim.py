"""Exchange the one-time claim token for the device's MQTT credentials (HTTP, once).

The response also carries the organization's model-signing key (`ota_key_id`, `ota_public_key`),
kept with the credentials: the device accepts OTA packages signed by it.
"""

import httpx

from edgefleet.contracts.provisioning import ProvisioningError, ProvisioningPayload
from edgefleet.edge.provisioning.store import DeviceCredentials

CLAIM_PATH = "/api/v1/devices/claim"


def claim_credentials(payload: ProvisioningPayload, timeout_s: float = 10.0) -> DeviceCredentials:
    """POST the token to the server named in the code; a refused token raises ProvisioningError."""
    url = payload.server_url.rstrip("/") + CLAIM_PATH
    try:
        response = httpx.post(
            url, json={"device_id": payload.device_id, "claim_token": payload.claim_token}, timeout=timeout_s
        )
    except httpx.HTTPError as err:
        raise ProvisioningError("unreachable", f"cannot reach {url}: {err}") from err
    if response.status_code in (400, 401, 403, 404, 409, 422):
        raise ProvisioningError("refused", f"the server refused the claim token ({response.status_code})")
    if response.status_code != 200:
        raise ProvisioningError("unreachable", f"claim failed with HTTP {response.status_code}")
    try:
        data = response.json()
        return DeviceCredentials(
            device_id=str(data["device_id"]),
            username=str(data["username"]),
            password=str(data["password"]),
            broker_url=data.get("broker_url"),
            ota_key_id=_optional_str(data.get("ota_key_id")),
            ota_public_key=_optional_str(data.get("ota_public_key")),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise ProvisioningError("refused", f"unexpected claim response: {err}") from err


def _optional_str(value: object) -> str | None:
    return str(value) if value else None
