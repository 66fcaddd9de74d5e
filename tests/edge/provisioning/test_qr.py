from pathlib import Path

import numpy as np
from PIL import Image

from edgefleet.edge.camera import synthetic_frames
from edgefleet.edge.provisioning import ProvisioningPayload, decode_payload, encode_payload
from edgefleet.edge.provisioning.qr import render_qr, scan_frame

PAYLOAD = ProvisioningPayload(
    ssid="Line 3; Hall:B, \\north",
    passphrase='pa;ss,wo:rd\\"x',
    security="WPA",
    server_url="https://fleet.example:8443",
    device_id="cam-7",
    claim_token="tok_abcdefghijklmnop",
)


def test_png_and_svg_render_and_the_png_scans_back(tmp_path: Path) -> None:
    png, svg = render_qr(encode_payload(PAYLOAD), tmp_path, stem="cam-7")
    assert svg.read_text().lstrip().startswith(("<?xml", "<svg"))
    frame = np.asarray(Image.open(png).convert("L"))
    texts = scan_frame(frame)
    assert [decode_payload(t) for t in texts] == [PAYLOAD]


def test_code_held_in_front_of_a_camera_is_found(tmp_path: Path) -> None:
    """Scaled down, off-centre, on a noisy scene, in a 320x240 frame."""
    png, _ = render_qr(encode_payload(PAYLOAD), tmp_path, scale=4)
    code = Image.open(png).convert("L").resize((150, 150), Image.Resampling.BILINEAR)
    scene = Image.fromarray(synthetic_frames(1, size=(240, 320), seed=3)[0])
    scene.paste(code, (140, 60))
    texts = scan_frame(np.asarray(scene))
    assert [decode_payload(t) for t in texts] == [PAYLOAD]


def test_frames_without_codes_scan_to_nothing() -> None:
    for frame in synthetic_frames(3, seed=1):
        assert scan_frame(frame) == []
