"""The camera node reads its provisioning QR code from its own frames (ef_qr_provision.c), on the
host: codes rendered by the CLI's renderer (segno, from contracts.provisioning.encode_payload), put in
camera frames at a distance, tilted, slightly out of focus and noisy, in the camera's pixel formats,
through ef_image's grayscale path, decoded by zxing-cpp behind the C decoder hook; the C parser's
fields must be the Python parser's, and what is not an edgefleet code is refused and counted."""

import re
from pathlib import Path

import numpy as np
import pytest

from edgefleet.contracts.provisioning import ProvisioningPayload, decode_payload, encode_payload
from edgefleet.dsp.image import to_gray
from edgefleet.edge.provisioning.qr import render_qr
from tests.edge.provisioning.test_payload import make
from tests.ml.firmware.camera_cbind import rgb565_to_rgb
from tests.ml.firmware.cbind import needs_cc
from tests.ml.firmware.qr_kit import (
    ACCEPTED,
    CONFIRMING,
    DECODER_ERROR,
    FORMATS,
    LOG_BYTES,
    SCANNING,
    TIMED_OUT,
    TOO_LONG,
    QrC,
    QrProvision,
    Shot,
    camera_bytes,
    camera_scene,
)

pytestmark = needs_cc
SECURITY = ("WPA", "WEP", "nopass")
PAYLOADS = {
    "plain": make(),
    "escaped": make(ssid='Plant;Floor:2,"B"', passphrase='p@ss;w:rd\\,"x"'),
    "latin-1 text": make(ssid="Café", passphrase="crème brûlée"),  # segno's default would be ISO 8859-1
    "non-latin": make(ssid="Halle Ω ☕", passphrase="ünïcödé-pass"),
    "open, hidden": make(security="nopass", passphrase="", hidden=True),
    "long": make(server_url="https://edgefleet.example.com:8443/base", device_id="cam-line-7-east",
                 claim_token="A1b2-C3d4_" * 6),
}  # fmt: skip
# How a code is held in front of the camera; every one of these reads.
SHOTS = (
    Shot(3.0),
    Shot(3.0, angle=-22, blur=0.8, noise=6),
    Shot(3.0, angle=90, blur=1.0, noise=8),
    Shot(3.0, angle=180, blur=0.6, noise=4),
    Shot(2.5, angle=5, blur=0.5, noise=4),
    Shot(3.0, angle=-8, blur=0.7, noise=6, offset=(30, -15)),
    Shot(2.0, blur=0.3, noise=3),  # far away: 2 pixels per module
)
OUT_OF_FOCUS = Shot(3.0, angle=90, blur=1.8, noise=12)


@pytest.fixture(scope="module")
def qr(tmp_path_factory: pytest.TempPathFactory) -> QrC:
    return QrC(tmp_path_factory.mktemp("camera-qr"))


@pytest.fixture(scope="module")
def codes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The CLI's PNG (`edgefleet device qr`) of every payload, plus codes that are not ours."""
    root = tmp_path_factory.mktemp("qr-png")
    texts = {name: encode_payload(p) for name, p in PAYLOADS.items()}
    texts |= {
        "plain wifi": "WIFI:T:WPA;S:guest-net;P:guestsecret99;H:false;;",  # a phone's Wi-Fi code
        "url": "https://example.com/menu?table=7",
        "version 2": encode_payload(make()).replace("EFV:1;", "EFV:2;"),
        "truncated": encode_payload(make())[:-2],
    }
    return {
        name: render_qr(text, root, stem=re.sub(r"\W", "_", name), scale=8)[0] for name, text in texts.items()
    }


def c_payload(s: QrProvision) -> ProvisioningPayload:
    p = s.payload
    return ProvisioningPayload(
        ssid=p.ssid.decode(), passphrase=p.passphrase.decode(), security=SECURITY[p.security],  # type: ignore[arg-type]
        server_url=p.server_url.decode(), device_id=p.device_id.decode(), claim_token=p.claim_token.decode(),
        hidden=bool(p.hidden),
    )  # fmt: skip


def assert_no_secret(s: QrProvision, *secrets: str) -> None:
    log = s.log_text()
    for secret in secrets:
        if secret:
            assert secret not in log and secret.encode() not in bytes(s.log), (secret, log)


def scan(qr: QrC, s: QrProvision, frames: list[np.ndarray], now_ms: int = 0) -> list[int]:
    return [qr.frame(s, f, now_ms + 200 * i) for i, f in enumerate(frames)]


# ------------------------------------------------------------------------------- real frames read
@pytest.mark.parametrize("fmt", ["grayscale", "rgb565"])
@pytest.mark.parametrize("name", list(PAYLOADS))
def test_codes_in_camera_frames_give_the_python_parsers_fields(
    qr: QrC, codes: dict[str, Path], name: str, fmt: str
) -> None:
    payload = PAYLOADS[name]
    text = encode_payload(payload)
    assert decode_payload(text) == payload
    for n, shot in enumerate(SHOTS):
        frame = camera_bytes(camera_scene(codes[name], shot, seed=n), FORMATS[fmt])
        gray = qr.grayscale(frame, FORMATS[fmt])
        rc, s = qr.session()
        assert rc == 0
        states = scan(qr, s, [gray, gray])
        assert states == [CONFIRMING, ACCEPTED], (shot, s.log_text(), s.refusals())
        assert s.candidate[: s.candidate_len] == text.encode()  # the code's bytes are the UTF-8 payload
        assert c_payload(s) == payload, shot
        assert_no_secret(s, payload.passphrase, payload.claim_token)
        assert f"device {payload.device_id}" in s.log_text() and "accepted after 2 frames" in s.log_text()
    assert not qr.errors


def test_ef_image_grayscale_is_dsp_images_luma(qr: QrC, codes: dict[str, Path]) -> None:
    scene = camera_scene(codes["plain"], SHOTS[1])
    rng = np.random.default_rng(3)
    colours = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)  # every channel different
    for frame, fmt, twin in [
        (scene, FORMATS["grayscale"], scene),
        (camera_bytes(scene, FORMATS["rgb565"]), FORMATS["rgb565"], None),
        (colours[..., ::-1].copy(), FORMATS["rgb888"], colours),
    ]:
        expected = to_gray(twin if twin is not None else rgb565_to_rgb(frame))
        assert np.array_equal(qr.grayscale(frame, fmt), expected)
    short = np.zeros(10, np.uint8)  # a frame shorter than its size
    assert qr.grayscale(short.reshape(2, 5), FORMATS["rgb565"]).tolist() == [-5]  # EF_IMAGE_EFRAME


def test_an_out_of_focus_code_is_no_code_not_a_misread(qr: QrC, codes: dict[str, Path]) -> None:
    _, s = qr.session()
    blurred = camera_scene(codes["plain"], OUT_OF_FOCUS, seed=1)
    assert scan(qr, s, [blurred] * 3) == [SCANNING] * 3
    assert (s.frames, s.frames_without_code, s.refusals()) == (3, 3, {})


# -------------------------------------------------------------------- what is not taken, and why
def test_codes_that_are_not_edgefleet_codes_are_refused_and_scanning_goes_on(
    qr: QrC, codes: dict[str, Path]
) -> None:
    frames = {name: camera_scene(codes[name], SHOTS[1], seed=7) for name in codes}
    _, s = qr.session()
    order = [
        "plain wifi",
        "plain wifi",
        "url",
        "version 2",
        "truncated",
        "plain wifi",
        "plain",
        "url",
        "plain",
    ]
    states = scan(qr, s, [frames[name] for name in order])
    assert states == [SCANNING] * 6 + [CONFIRMING, CONFIRMING, ACCEPTED]
    assert s.refusals() == {"foreign": 5, "version": 1, "truncated": 1}
    assert c_payload(s) == PAYLOADS["plain"] and s.replaced == 0 and s.frames == len(order)
    # A refusal is logged when its reason changes (a code held in view is refused every frame).
    assert s.log_text().splitlines() == [
        "code refused (foreign): a plain Wi-Fi code without the edgefleet extension",
        "code refused (version): this edgefleet extension version is not supported",
        "code refused (truncated): the code is truncated",
        "code refused (foreign): a plain Wi-Fi code without the edgefleet extension",
        'edgefleet code for device cam-01 on network "plant-floor" seen',
        "code refused (foreign): not a Wi-Fi provisioning code",
        'accepted after 9 frames (2 reads): network "plant-floor" (WPA), device cam-01, server http://192.0.2.10:8000',
    ]
    assert_no_secret(s, "guestsecret99", PAYLOADS["plain"].passphrase, PAYLOADS["plain"].claim_token)


def test_garbage_frames_are_frames_without_a_code(qr: QrC, codes: dict[str, Path]) -> None:
    rng = np.random.default_rng(11)
    checker = (np.indices((240, 320)).sum(axis=0) // 8 % 2 * 255).astype(np.uint8)
    garbage = [
        rng.integers(0, 256, (240, 320), dtype=np.uint8),  # sensor noise
        np.zeros((240, 320), np.uint8),  # lens cap on
        np.full((240, 320), 255, np.uint8),  # overexposed
        checker,
        camera_scene(codes["plain"], Shot(0.4), seed=2),  # a code too far away to resolve
    ]
    _, s = qr.session()
    assert scan(qr, s, garbage) == [SCANNING] * len(garbage)
    assert (s.frames, s.frames_without_code, s.refusals(), s.log_len) == (5, 5, {}, 0)


def test_one_read_is_not_enough_and_a_different_code_starts_over(qr: QrC) -> None:
    a, b = (encode_payload(make(device_id=d)).encode() for d in ("cam-a", "cam-b"))
    _, s = qr.session(qr.config(confirmations=3))
    states = [qr.text(s, t) for t in (a, a, b, None, b, a, b, b, b)]
    assert states == [CONFIRMING] * 8 + [ACCEPTED]
    assert s.replaced == 3 and c_payload(s).device_id == "cam-b" and s.frames_without_code == 1
    assert s.log_text().count("a different edgefleet code replaced") == 3
    assert qr.text(s, a) == ACCEPTED and c_payload(s).device_id == "cam-b"  # accepted is final
    _, once = qr.session(qr.config(confirmations=1))
    assert qr.text(once, a) == ACCEPTED


def test_payloads_over_the_devices_limits_are_refused_without_showing_them(qr: QrC) -> None:
    long_pass = make(passphrase="ü" * 40)  # 40 characters (valid WPA), 80 bytes: over the 63 of wifi_config_t
    long_url = make(server_url="https://edgefleet.example.com/" + "a" * 240)
    _, s = qr.session(qr.config(passphrase=63, url=256))
    assert qr.text(s, encode_payload(long_pass).encode()) == SCANNING
    assert qr.text(s, encode_payload(long_url).encode()) == SCANNING
    assert s.refusals() == {"too_long": 2} and s.payload.passphrase == b""  # wiped
    assert "the passphrase is longer than this device takes" in s.log_text()
    assert_no_secret(s, long_pass.passphrase, long_pass.claim_token, long_url.server_url)
    assert qr.text(s, b"x" * 1025) == SCANNING  # longer than EF_QR_TEXT_MAX
    assert qr.text(s, None, code=TOO_LONG) == SCANNING and qr.text(s, None, code=DECODER_ERROR) == SCANNING
    assert s.refusals() == {"too_long": 4, "decoder": 1}


def test_timeout_reports_what_was_seen_and_a_restart_scans_again(qr: QrC, codes: dict[str, Path]) -> None:
    start = 2**32 - 1000  # the millisecond clock wraps during the session
    _, s = qr.session(qr.config(timeout_ms=5000), now_ms=start)
    plain_wifi = camera_scene(codes["plain wifi"], SHOTS[0])
    blank = np.zeros((240, 320), np.uint8)
    assert scan(qr, s, [plain_wifi, blank, blank], now_ms=start) == [SCANNING] * 3
    calls = qr.calls
    assert qr.frame(s, plain_wifi, (start + 4999) % 2**32) == SCANNING
    assert qr.frame(s, plain_wifi, (start + 5000) % 2**32) == TIMED_OUT
    assert qr.frame(s, plain_wifi, (start + 6000) % 2**32) == TIMED_OUT
    assert qr.calls == calls + 1  # no decoding once the session is over
    assert "no edgefleet code accepted in 5 s: 4 frames, 2 without a code; refused: foreign 2" in s.log_text()
    assert_no_secret(s, "guestsecret99")
    qr.lib.ef_qr_provision_restart(s, 10)
    assert (s.state, s.frames, s.refusals(), s.log_len, s.config.timeout_ms) == (SCANNING, 0, {}, 0, 5000)
    _, forever = qr.session(qr.config(timeout_ms=0))
    assert qr.frame(forever, blank, 2**31) == SCANNING


def test_the_log_keeps_the_newest_whole_lines_and_no_secret(qr: QrC) -> None:
    secret = make(passphrase="Sup3r-Secret-Pass")
    texts = [
        encode_payload(make(device_id=f"cam-{n}", passphrase=secret.passphrase)).encode() for n in range(40)
    ]
    _, s = qr.session(qr.config(confirmations=16))
    for n, text in enumerate(texts):
        qr.text(s, text)
        qr.text(s, b"WIFI:T:WPA;S:x;P:Sup3r-Secret-Pass;;" if n % 2 else b"https://example.com")
    log = s.log_text()
    assert 0 < s.log_len < LOG_BYTES and log.endswith("\n")
    assert log.splitlines()[-1].startswith("code refused (foreign)") and "device cam-39 " in log
    assert "cam-0 " not in log  # the oldest lines were dropped, whole
    assert all(
        line.startswith(("code refused", "a different", "edgefleet code for")) for line in log.splitlines()
    )
    assert_no_secret(s, secret.passphrase, secret.claim_token)
    qr.lib.ef_qr_provision_wipe(s)
    assert s.candidate_len == 0 and not any(bytes(s.candidate)) and not any(bytes(s.decoded))


def test_a_newline_in_an_ssid_cannot_forge_a_log_line(qr: QrC) -> None:
    payload = make(ssid="lab\naccepted after 1 frames")
    _, s = qr.session(qr.config(confirmations=1))
    assert qr.text(s, encode_payload(payload).encode()) == ACCEPTED
    assert c_payload(s) == payload
    assert len(s.log_text().splitlines()) == 2 and 'network "lab?accepted after 1 frames"' in s.log_text()


def test_bad_configs_are_refused(qr: QrC) -> None:
    for confirmations in (0, 17):
        assert qr.session(qr.config(confirmations=confirmations))[0] == -1
    assert qr.session(qr.config(confirmations=16))[0] == 0
    assert qr.lib.ef_qr_reason_name(6) == b"too_long" and qr.lib.ef_qr_reason_name(99) == b"?"
