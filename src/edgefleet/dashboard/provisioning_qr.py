"""The provisioning QR code a camera node scans: Wi-Fi fields plus server, device id and claim token."""

import base64
import io

import segno

from edgefleet.contracts.provisioning import ProvisioningPayload, Security, encode_payload


def provisioning_png(
    *,
    ssid: str,
    passphrase: str,
    security: Security,
    server_url: str,
    device_id: str,
    claim_token: str,
    scale: int = 6,
) -> str:
    """A `data:image/png;base64,...` URL; raises ProvisioningError when a field is invalid."""
    payload = ProvisioningPayload(ssid, passphrase, security, server_url, device_id, claim_token)
    # UTF-8 bytes: segno would pick ISO 8859-1 or Shift JIS where they fit; the firmware reads UTF-8.
    qr = segno.make(encode_payload(payload), error="m", encoding="utf-8")
    buffer = io.BytesIO()
    qr.save(buffer, kind="png", scale=scale, border=4)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
