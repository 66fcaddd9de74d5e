"""The provisioning QR code the dashboard shows holds the payload as UTF-8 bytes, as the camera node's
firmware reads them (segno would otherwise pick ISO 8859-1 or Shift JIS where the text fits)."""

import base64
import io

import numpy as np
import pytest
import zxingcpp
from PIL import Image

from edgefleet.contracts.provisioning import ProvisioningPayload, encode_payload
from edgefleet.dashboard.provisioning_qr import provisioning_png


@pytest.mark.parametrize(
    ("ssid", "passphrase"), [("Café", "crème brûlée"), ("Ω-Halle", "パスワード123"), ("lab", "plainpass")]
)
def test_the_code_holds_the_payload_as_utf8(ssid: str, passphrase: str) -> None:
    fields = {
        "server_url": "https://edgefleet.example.com",
        "device_id": "cam-01",
        "claim_token": "claim_Token-0123",
    }
    url = provisioning_png(ssid=ssid, passphrase=passphrase, security="WPA", **fields)  # type: ignore[arg-type]
    image = Image.open(io.BytesIO(base64.b64decode(url.removeprefix("data:image/png;base64,")))).convert("L")
    (code,) = zxingcpp.read_barcodes(np.asarray(image))
    assert code.format == zxingcpp.BarcodeFormat.QRCode
    payload = ProvisioningPayload(ssid, passphrase, "WPA", **fields)  # type: ignore[arg-type]
    assert bytes(code.bytes) == encode_payload(payload).encode("utf-8")
