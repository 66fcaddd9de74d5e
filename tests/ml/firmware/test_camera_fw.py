"""The camera node's firmware against its twin: the generated project, ef_image (bit-exact with
dsp.image), ef_presence (the twin's hysteresis, events and messages) and, built with real TFLite
Micro, the whole frame -> event path on the shared images (tests/ml/firmware/camparity.py)."""

import base64
import json
import math
import re
import subprocess
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from edgefleet.contracts import Channel, Event, ModelCard, Status, Telemetry, decode, load_model_card
from edgefleet.dsp.image import frame_to_int8
from edgefleet.edge.camera import CameraNode, DetectionConfig, PresenceTracker
from edgefleet.edge.camera.detector import DEFAULT_THRESHOLD_ON as TWIN_THRESHOLD_ON
from edgefleet.edge.camera.person import DEFAULT_LABELS
from edgefleet.ml.firmware import FirmwareError, FirmwareOptions, generate_project, render_project
from edgefleet.ml.firmware.camera import (
    CAMERA_FILES,
    DEFAULT_THRESHOLD_ON,
    LABELS,
    VIBRATION_ONLY,
    camera_file_set,
)
from edgefleet.ml.firmware.hostbuild import run_harness
from edgefleet.ml.firmware.project import load_model_dir
from edgefleet.ml.runtime import TflmModel
from tests.ml.firmware import camparity
from tests.ml.firmware.camera_cbind import (
    EARG,
    ECROP,
    EFRAME,
    EUNSUPPORTED,
    EWORKSPACE,
    GRAYSCALE,
    OK,
    RGB565,
    RGB888,
    CameraC,
    CameraHeader,
    CameraTelemetry,
    compile_camera,
    rgb565_to_rgb,
)
from tests.ml.firmware.cbind import CC, needs_cc

pytestmark = [needs_cc, pytest.mark.needs("shared")]
TS = "2026-03-04T05:06:07.089Z"


@dataclass
class Camera:
    model_dir: Path
    project: Path
    card: ModelCard
    c: CameraC
    files: dict[str, str]


@pytest.fixture(scope="module")
def camera(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Camera:
    root = tmp_path_factory.mktemp("camera-fw")
    model_dir = camparity.person_model_dir(shared, root / "models")
    written = generate_project(model_dir, "esp32s3", root / "fw")
    files = {str(p.relative_to(root / "fw")): p.read_text(encoding="utf-8") for p in written}
    c = CameraC(compile_camera(root / "fw" / "main", root))
    return Camera(model_dir, root / "fw", load_model_card(model_dir / "model_card.json"), c, files)


@pytest.fixture(scope="module")
def images(shared: Path) -> dict[str, np.ndarray]:
    return camparity.shared_images(shared)


def header(device_id: str = "cam-7", seq: int = 5, ts: str = TS, synced: bool = True) -> CameraHeader:
    return CameraHeader(device_id.encode(), seq, ts.encode(), int(synced))


# ------------------------------------------------------------------------------------- the project
def test_camera_project_has_its_own_files_and_the_shared_platform(camera: Camera) -> None:
    files = camera.files
    assert set(files) == set(camera_file_set())
    assert not set(files) & VIBRATION_ONLY
    assert {"main/ef_platform.h", "main/ef_mqtt.cc", "main/ef_ota_client.cc", "main/ef_wire.c"} <= set(files)
    srcs = re.search(
        r"SRCS(.*?)\n\s*(?:#|PRIV_REQUIRES|REQUIRES|INCLUDE_DIRS)", files["main/CMakeLists.txt"], re.S
    )
    assert srcs is not None
    listed = set(re.findall(r'"([^"]+)"', srcs.group(1)))
    on_disk = {Path(p).name for p in files if p.startswith("main/") and p.endswith((".c", ".cc"))}
    assert listed == on_disk  # every source is built, and nothing the project does not have
    assert "-ffp-contract=off" in files["main/CMakeLists.txt"]
    manifest = files["main/idf_component.yml"]
    assert "espressif/esp32-camera: 2.1.5" in manifest and "espressif/esp-tflite-micro" in manifest
    assert "# CONFIG_SPIRAM_IGNORE_NOTFOUND is not set" in files["sdkconfig.defaults"]
    inference = files["main/inference.cc"]
    methods = sorted(re.findall(r"resolver\.(Add\w+)\(\)", inference))
    assert methods == ["AddAveragePool2D", "AddConv2D", "AddDepthwiseConv2D", "AddReshape", "AddSoftmax"]
    assert "MicroMutableOpResolver<5>" in inference
    settings = files["main/model_settings.h"]
    for macro in ("EF_INPUT_BYTES (96 * 96)", "EF_OUTPUT_BYTES 2", "EF_PERSON_INDEX 1",
                  'EF_DEVICE_KIND "camera"', "EF_CAMERA_FRAMESIZE FRAMESIZE_QVGA",
                  "EF_IMAGE_PIXFORMAT EF_PIXFORMAT_GRAYSCALE", "EF_PRESENCE_THRESHOLD_ON 0.6",
                  "EF_PRESENCE_THRESHOLD_OFF 0.4", "EF_PRESENCE_SMOOTHING 0.5",
                  "EF_CAM_PIN_XCLK 15"):  # fmt: skip
        assert f"#define {macro}" in settings


def test_camera_project_is_deterministic(camera: Camera) -> None:
    card, model = load_model_dir(camera.model_dir)
    first = render_project(card, model, "esp32s3")
    assert first == render_project(card, model, "esp32s3")
    assert {p: d.decode() for p, d in first.items()} == camera.files


def test_camera_project_reads_its_provisioning_qr_code(camera: Camera) -> None:
    """The QR path is wired (its C is tested in test_camera_qr.py): esp-code-scanner declared, the
    camera switched to grayscale QVGA while the platform provisions, the payload handed to it."""
    files = camera.files
    manifest = yaml.safe_load(files["main/idf_component.yml"])["dependencies"]
    assert (
        manifest["espressif/esp-code-scanner"] == "*" and "espressif/quirc" in files["main/idf_component.yml"]
    )
    assert (
        '#include "esp_code_scanner.h"' in files["main/ef_qr_decode.c"]
        and "ESP_CODE_SCANNER_IMAGE_GRAY" in (files["main/ef_qr_decode.c"])
    )
    app = files["main/app_main.cc"] + files["main/ef_qr_camera.cc"]
    assert "ef_qr_camera_set_mode(provisioning)" in app and "ef_qr_camera_init(&config)" in app
    for call in ("ef_network_state() == EF_NET_PROVISIONING", "ef_image_grayscale(&plan, fb->buf",
                 "ef_qr_provision_frame(qr, gray, EF_QR_WIDTH, EF_QR_HEIGHT", "ef_network_offer_payload(",
                 "ef_qr_provision_wipe(qr)", "config.pixel_format = PIXFORMAT_GRAYSCALE"):  # fmt: skip
        assert call in app, call
    logged = [line for line in app.splitlines() if "ESP_LOG" in line or "printf" in line]
    assert not [
        line for line in logged if re.search(r"candidate|decoded|passphrase|claim_token|payload\.", line)
    ]
    assert "bool ef_network_offer_payload(" in files["main/ef_platform.h"]
    settings = files["main/model_settings.h"]
    assert "#define EF_QR_CONFIRMATIONS 2 " in settings and "#define EF_QR_TIMEOUT_MS 300000u" in settings
    card, model = load_model_dir(camera.model_dir)
    options = FirmwareOptions.model_validate({"camera": {"qr_confirmations": 3, "qr_timeout_s": 0}})
    settings = render_project(card, model, "esp32s3", options)["main/model_settings.h"].decode()
    assert "#define EF_QR_CONFIRMATIONS 3 " in settings and "#define EF_QR_TIMEOUT_MS 0u" in settings


def test_shared_files_use_nothing_of_the_vibration_node(camera: Camera) -> None:
    """A file both kinds get must not need the vibration node's headers or its settings' macros."""
    vib_settings = (
        Path(__file__).parents[3] / "src/edgefleet/ml/firmware/templates/main/model_settings.h.j2"
    ).read_text()
    cam_settings = camera.files["main/model_settings.h"]
    vibration_macros = set(re.findall(r"#define (EF_\w+)", vib_settings)) - set(
        re.findall(r"#define (EF_\w+)", cam_settings)
    )
    vibration_headers = {Path(p).name for p in VIBRATION_ONLY if p.endswith(".h")}
    shared = [p for p in camera.files if p not in CAMERA_FILES and p.endswith((".c", ".cc", ".h"))]
    for path in shared:
        # inference.cc's fallback for a kind that does not define its tensor sizes
        text = re.sub(r"#ifndef (EF_\w+)\n#define \1 [^\n]*\n#endif", "", camera.files[path])
        included = set(re.findall(r'#\s*include\s+"([^"]+)"', text))
        assert not included & vibration_headers, f"{path} includes {included & vibration_headers}"
        used = set(re.findall(r"\b(EF_\w+)\b", text)) & vibration_macros
        assert not used or "model_settings.h" not in included, f"{path} uses {used}"


def int8_input(shape: list[int], zero_point: int = 0) -> dict[str, object]:
    return {"shape": shape, "dtype": "int8", "quantization": {"scale": 0.0078, "zero_point": zero_point}}


@pytest.mark.parametrize(
    ("change", "options", "message"),
    [
        ({"task": "classification"}, {}, "person_detection"),
        ({"input": int8_input([1, 96, 96, 1], zero_point=5)}, {}, "p - 128"),
        ({"input": int8_input([1, 96, 96, 3])}, {}, "[1, H, W, 1]"),
        ({"labels": ["cat", "dog"]}, {}, "output must be"),
        ({"arena_bytes": 400_000}, {}, "does not fit a camera node"),
        ({}, {"camera": {"frame_size": "96X96"}, "arena_margin": 0.0}, None),  # 96x96 frames: fine
        ({"input": int8_input([1, 128, 128, 1])}, {"camera": {"frame_size": "QQVGA"}}, "smaller than"),
        ({}, {"camera": {"board": "esp32-cam"}}, "is an esp32, not an esp32s3"),
        ({}, {"camera": {"threshold_on": 0.3}}, "off < on"),
    ],
)  # fmt: skip
def test_cards_and_options_the_camera_export_refuses(
    camera: Camera, change: dict[str, object], options: dict[str, object], message: str | None
) -> None:
    card, model = load_model_dir(camera.model_dir)
    card = ModelCard.model_validate({**card.model_dump(), **change})
    if message is None:
        assert render_project(card, model, "esp32s3", FirmwareOptions.model_validate(options))
        return
    with pytest.raises(FirmwareError, match=re.escape(message)):
        render_project(card, model, "esp32s3", FirmwareOptions.model_validate(options))


def test_an_esp32_cam_project_uses_its_board(camera: Camera) -> None:
    card, model = load_model_dir(camera.model_dir)
    files = render_project(card, model, "esp32")
    settings = files["main/model_settings.h"].decode()
    assert "#define EF_CAM_PIN_PWDN 32" in settings and "#define EF_CAM_PIN_XCLK 0" in settings
    assert "CONFIG_SPIRAM_MODE_OCT" not in files["sdkconfig.defaults"].decode()  # quad PSRAM


def reset_pin_guard_fails(app_main: str, gpio: int, tmp_path: Path) -> bool:
    """Whether the camera app's preprocessor guard stops a build with CONFIG_EF_RESET_GPIO=gpio."""
    guard = re.search(r"#if defined\(CONFIG_EF_RESET_GPIO\).*?#endif\n", app_main, re.DOTALL)
    assert guard is not None
    source = tmp_path / f"guard{gpio}.c"
    source.write_text(guard.group(0))
    assert CC is not None
    command = [CC, "-fsyntax-only", f"-DCONFIG_EF_RESET_GPIO={gpio}", str(source)]
    return subprocess.run(command, check=False, capture_output=True).returncode != 0


def reset_default(kconfig: str) -> int:
    match = re.search(r"config EF_RESET_GPIO\n.*?default (-?\d+)\n", kconfig, re.DOTALL)
    assert match is not None
    return int(match.group(1))


def test_the_reset_button_never_takes_a_camera_pin(camera: Camera, tmp_path: Path) -> None:
    card, model = load_model_dir(camera.model_dir)
    # esp32-cam: GPIO 0 is the camera's XCLK, so no button by default (the old default stopped the clock)
    cam = render_project(card, model, "esp32")
    assert reset_default(cam["main/Kconfig.projbuild"].decode()) == -1
    assert reset_pin_guard_fails(cam["main/app_main.cc"].decode(), 0, tmp_path)
    assert not reset_pin_guard_fails(cam["main/app_main.cc"].decode(), -1, tmp_path)
    assert not reset_pin_guard_fails(cam["main/app_main.cc"].decode(), 13, tmp_path)  # a free pin
    # ESP32-S3-EYE: GPIO 0 is free, the BOOT button stays the default
    eye = camera.files["main/Kconfig.projbuild"]
    assert reset_default(eye) == 0
    assert not reset_pin_guard_fails(camera.files["main/app_main.cc"], 0, tmp_path)
    assert reset_pin_guard_fails(camera.files["main/app_main.cc"], 15, tmp_path)  # its XCLK
    for target, pin in (("esp32", 0), ("esp32", 26), ("esp32s3", 15), ("esp32s3", 4)):
        with pytest.raises(FirmwareError, match="is a camera pin"):
            render_project(card, model, target, FirmwareOptions(reset_gpio=pin))
    chosen = render_project(card, model, "esp32", FirmwareOptions(reset_gpio=13))
    assert reset_default(chosen["main/Kconfig.projbuild"].decode()) == 13


def test_detection_defaults_are_the_twins() -> None:
    twin, ours = DetectionConfig(), FirmwareOptions().camera
    assert twin.threshold_on is None and ours.threshold_on is None  # both: the card's threshold, else 0.6
    assert (TWIN_THRESHOLD_ON, twin.threshold_off, twin.smoothing) == (
        DEFAULT_THRESHOLD_ON, ours.threshold_off, ours.smoothing,
    )  # fmt: skip
    assert LABELS == DEFAULT_LABELS


# ---------------------------------------------------------------------------------------- ef_image
def test_preprocessing_is_bit_exact_on_every_shared_image_in_every_view(
    camera: Camera, images: dict[str, np.ndarray]
) -> None:
    compared = 0
    for name, gray in images.items():
        for view in camparity.VIEWS:
            frame = view.camera_frame(gray)
            ours = camera.c.convert(frame, view.fmt, 96, 96)
            assert np.array_equal(ours, frame_to_int8(view.twin_frame(frame), 96, 96)), (name, view.name)
            compared += 1
    assert compared == len(images) * len(camparity.VIEWS) >= 8


def test_luma_is_bit_exact_for_every_colour(camera: Camera) -> None:
    """All 2**24 RGB888 colours (one 4096x4096 frame, no resize) and all 2**16 RGB565 values."""
    levels = np.arange(256, dtype=np.uint8)
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    rgb = np.stack([r, g, b], axis=-1).reshape(4096, 4096, 3)
    ours = camera.c.convert(np.ascontiguousarray(rgb[..., ::-1]), RGB888, 4096, 4096)
    assert np.array_equal(ours, frame_to_int8(rgb, 4096, 4096))
    words = np.arange(1 << 16, dtype=np.uint16).reshape(256, 256)
    rgb565 = np.stack([(words >> 8).astype(np.uint8), (words & 0xFF).astype(np.uint8)], axis=-1)
    ours = camera.c.convert(rgb565, RGB565, 256, 256)
    assert np.array_equal(ours, frame_to_int8(rgb565_to_rgb(rgb565), 256, 256))


@pytest.mark.parametrize(
    ("size", "out"),
    [((120, 160), (96, 96)), ((240, 320), (96, 96)), ((97, 131), (96, 96)), ((131, 97), (96, 96)),
     ((95, 97), (96, 96)), ((1, 1), (96, 96)), ((2, 3), (96, 96)), ((1, 1000), (96, 96)),
     ((1000, 1), (96, 96)), ((1200, 1600), (96, 96)), ((240, 320), (48, 64)), ((240, 320), (64, 48)),
     ((240, 320), (1, 1)), ((7, 500), (3, 200)), ((296, 400), (128, 128))],
)  # fmt: skip
def test_resize_is_bit_exact_on_odd_and_tiny_frames(
    camera: Camera, size: tuple[int, int], out: tuple[int, int]
) -> None:
    rng = np.random.default_rng(size[0] * 7919 + size[1])
    gray = rng.integers(0, 256, size, dtype=np.uint8)
    assert np.array_equal(camera.c.convert(gray, GRAYSCALE, *out), frame_to_int8(gray, *out))
    rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    ours = camera.c.convert(np.ascontiguousarray(rgb[..., ::-1]), RGB888, *out)
    assert np.array_equal(ours, frame_to_int8(rgb, *out))


def test_bad_frames_and_sizes_are_refused_cleanly(camera: Camera) -> None:
    c = camera.c
    for w, h, fmt, ow, oh in [(0, 5, 0, 96, 96), (5, 0, 0, 96, 96), (-3, 5, 0, 96, 96), (5, 5, 0, 0, 96),
                              (5, 5, 7, 96, 96), (9000, 5, 0, 96, 96)]:  # fmt: skip
        assert c.plan(w, h, fmt, ow, oh)[0] == EARG, (w, h, fmt, ow, oh)
        assert c.lib.ef_image_workspace_bytes(w, h, ow, oh) == 0 or fmt == 7
    assert c.plan(1, 1, GRAYSCALE, 1, 300)[0] == ECROP  # rounds to an empty crop
    assert c.plan(4, 600, GRAYSCALE, 2, 300)[0] == EUNSUPPORTED  # Pillow resizes this in two steps
    needed = int(c.lib.ef_image_workspace_bytes(320, 240, 96, 96))
    assert c.plan(320, 240, GRAYSCALE, 96, 96, workspace_bytes=needed - 1)[0] == EWORKSPACE
    rc, plan = c.plan(320, 240, RGB565, 96, 96)
    assert rc == OK
    assert c.to_int8(plan, bytes(320 * 240 * 2 - 1))[0] == EFRAME
    assert c.lib.ef_image_to_int8(None, None, 0, None) == EARG


def test_thumbnail_is_the_frames_grayscale_in_blocks(camera: Camera, images: dict[str, np.ndarray]) -> None:
    view = camparity.VIEWS[2]  # QVGA RGB565
    frame = view.camera_frame(images["person"])
    rc, plan = camera.c.plan(320, 240, RGB565, 96, 96)
    assert rc == OK
    thumb = camera.c.thumbnail(plan, frame, 160)
    gray = frame_to_int8(view.twin_frame(frame), 240, 320).astype(np.int16) + 128  # the frame's own luma
    blocks = gray.reshape(120, 2, 160, 2).sum(axis=(1, 3))
    assert thumb.shape == (120, 160) and np.array_equal(thumb, (blocks + 2) // 4)
    assert camera.c.thumbnail(plan, frame, 320).shape == (240, 320)


# ------------------------------------------------------------------------------------- ef_presence
def scripted_scores() -> list[float]:
    rng = np.random.default_rng(19)
    walk = np.clip(np.cumsum(rng.normal(0, 0.12, 400)) * 0.3 + 0.45, 0, 1)
    crafted = [0.0, 1.0, 0.6, 0.6, 0.4, 0.39999999, 0.4, 0.59999, 0.6, 1.0, 0.0, 0.0, 0.0, 1 / 256, 255 / 256]
    swings = ([1.0] * 8 + [0.0] * 8) * 3
    return [*crafted, *walk.tolist(), *swings, *(q / 256 for q in range(256))]


@pytest.mark.parametrize(
    "config",
    [DetectionConfig().for_card(None), DetectionConfig(0.7, 0.2, 0.25), DetectionConfig(0.5, 0.49, 1.0)],
)
def test_presence_follows_the_twin_step_by_step(camera: Camera, config: DetectionConfig) -> None:
    twin = PresenceTracker(config)
    rc, ours = camera.c.presence(twin.threshold_on, config.threshold_off, config.smoothing)
    assert rc == 0
    transitions = {"raised": 1, "cleared": -1, None: 0}
    counted = {1: 0, -1: 0}
    for score in scripted_scores():
        expected = transitions[twin.update(score)]
        assert camera.c.update(ours, score) == expected
        assert ours.smoothed == twin.smoothed and bool(ours.present) == twin.present  # bit for bit
        counted[expected] = counted.get(expected, 0) + 1
    assert (ours.raised, ours.cleared) == (counted[1], counted[-1]) and counted[1] >= 3
    assert ours.frames == len(scripted_scores())


def test_presence_refuses_the_settings_the_twin_refuses(camera: Camera) -> None:
    for on, off, smoothing in [(0.6, 0.4, 0.5), (0.4, 0.6, 0.5), (0.5, 0.5, 0.5), (1.0, 0.0, 1.0),
                               (1.01, 0.4, 0.5), (0.6, -0.1, 0.5), (0.6, 0.4, 0.0), (0.6, 0.4, 1.5),
                               (math.nan, 0.4, 0.5), (0.6, 0.4, math.nan)]:  # fmt: skip
        try:
            DetectionConfig(on, off, smoothing)
            twin_ok = not any(math.isnan(v) for v in (on, off, smoothing))
        except ValueError:
            twin_ok = False
        assert (camera.c.presence(on, off, smoothing)[0] == 0) == twin_ok, (on, off, smoothing)


def test_person_score_dequantizes_the_person_output(camera: Camera) -> None:
    q = camera.card.output.quantization
    assert q is not None
    for value in range(-128, 128):
        assert camera.c.person_score(value, q.scale, q.zero_point) == (value - q.zero_point) * q.scale


def c_events(
    camera: Camera, frames: list[np.ndarray], view: camparity.View, twin: list[Event]
) -> list[Event]:
    """ef_image + the tflite-micro interpreter + ef_presence, events formatted with the twin's headers."""
    reference = TflmModel((camera.model_dir / "model.tflite").read_bytes())
    q = camera.card.output.quantization
    assert q is not None
    _, presence = camera.c.presence(0.6, 0.4, 0.5)
    events: list[Event] = []
    for frame in frames:
        x = camera.c.convert(frame, view.fmt, 96, 96)
        out = reference.run(x[None, ..., None])[0]
        transition = camera.c.update(presence, camera.c.person_score(int(out[1]), q.scale, q.zero_point))
        if transition:
            theirs = twin[len(events)] if len(events) < len(twin) else twin[-1]
            ts = theirs.ts.isoformat().replace("+00:00", "Z")
            n, text = camera.c.format("event", header(theirs.device_id, theirs.seq, ts, theirs.clock_synced),
                                      presence, int(transition == 1), None)  # fmt: skip
            assert n == len(text.encode())
            message = decode(Channel.EVENT, text)
            assert isinstance(message, Event)
            events.append(message)
    return events


def test_events_equal_the_twins_on_the_real_images(
    camera: Camera, images: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """In the wider views no_person.bmp scores about 0.4, the clearing threshold: there the twin's
    hysteresis keeps the person present, and so must the firmware's."""
    scene = [images["person" if c == "p" else "no_person"] for c in camparity.SEQUENCE]
    compared: list[Event] = []
    for n, view in enumerate(camparity.VIEWS):
        frames = [view.camera_frame(img) for img in scene]
        twin = camparity.twin_events(
            camera.model_dir, [view.twin_frame(f) for f in frames], tmp_path / f"twin-{n}"
        )
        ours = c_events(camera, frames, view, twin)
        assert ours == twin, view.name  # every field, header included
        assert twin and twin[0].active, view.name
        compared += twin
    assert sum(not e.active for e in compared) >= 2 and len(compared) >= 6


def test_event_scores_round_as_python_does_ties_included(camera: Camera) -> None:
    _, presence = camera.c.presence(0.6, 0.4, 0.5)
    for value in [k / 256 for k in range(257)] + [0.03125, 0.09375, 0.15625, 0.12345, 0.99995, 0.6]:
        presence.smoothed = value
        _, text = camera.c.format("event", header(), presence, 1, None)
        event = decode(Channel.EVENT, text)
        assert isinstance(event, Event) and event.score == round(value, 4), value


def test_messages_never_overflow_their_buffer(camera: Camera) -> None:
    _, presence = camera.c.presence(0.6, 0.4, 0.5)
    camera.c.update(presence, 0.9)
    thumb = base64.b64encode(bytes(range(256)) * 4).decode()
    n, full = camera.c.format("event", header(), presence, 1, thumb.encode())
    assert n == len(full) > len(thumb)
    for cap in range(n + 1):  # one byte short of the NUL and less: refused, nothing half written
        assert camera.c.format("event", header(), presence, 1, thumb.encode(), cap=cap) == (-1, ""), cap
    assert camera.c.format("event", header(), presence, 1, thumb.encode(), cap=n + 1) == (n, full)
    presence.smoothed = math.nan
    assert camera.c.format("event", header(), presence, 1, None)[0] == -1  # a person event needs a score


def test_thumbnail_base64_is_standard_base64(camera: Camera) -> None:
    rng = np.random.default_rng(5)
    for size in [0, 1, 2, 3, 4, 5, 6, 7, 100, 5001]:
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        expected = base64.b64encode(data).decode()
        assert camera.c.base64(data, len(expected) + 1) == (len(expected), expected)
        assert camera.c.base64(data, len(expected))[0] == -1


def test_telemetry_and_status_decode_and_count_detections_as_the_twin(camera: Camera) -> None:
    rate, clock = camera.c.rate(), SimpleNamespace(now=0.0)
    twin = SimpleNamespace(clock=SimpleNamespace(uptime_s=lambda: clock.now), _detections=deque())
    raises = deque([5.0, 50.0, 700.0, 3000.0, 3650.0, 3700.0, 7000.0, 7100.0])
    for now in [0.5, 1.0, 10.0, 600.0, 3599.0, 3605.0, 3660.0, 4000.0, 7050.0, 7200.0, 20000.0]:
        clock.now = now
        while raises and raises[0] <= now:
            t = raises.popleft()
            twin._detections.append(t)
            camera.c.rate_add(rate, t)
        expected = CameraNode.detections_per_hour(twin)  # type: ignore[arg-type]
        assert camera.c.rate_per_hour(rate, now) == expected, now
    telemetry = CameraTelemetry(b"running", 7200.5, 60.25, 118, 86000.5, 85264, 3, 1, 0, 2.0, b"0.1.0")
    n, text = camera.c.format("telemetry", header(seq=9), telemetry)
    message = decode(Channel.TELEMETRY, text)
    assert isinstance(message, Telemetry) and n == len(text)
    assert (message.windows, message.inference_us, message.detections_per_hour, message.arena_bytes) == (
        118, 86000.5, 2.0, 85264,
    )  # fmt: skip
    telemetry.inference_us = -1.0
    assert "inference_us" not in json.loads(camera.c.format("telemetry", header(), telemetry)[1])
    _, text = camera.c.format(
        "status", header(), 0, b"degraded", b"0.1.0", b"0.1.0", b"person-detect", b"tflm-90b983c2"
    )
    status = decode(Channel.STATUS, text)
    assert isinstance(status, Status) and (status.kind, status.state, status.mode) == (
        "camera",
        "offline",
        "degraded",
    )


# ------------------------------------------------------------------- with TFLite Micro (host build)
@pytest.mark.needs("tflm_host")
@pytest.mark.slow
def test_harness_equals_the_interpreter_and_the_twin_on_the_shared_images(
    camera: Camera, shared: Path, tmp_path: Path
) -> None:
    """The project's own inference.cc + ef_image.c + ef_presence.c, linked with TFLite Micro."""
    harness, _ = camparity.build_camera_harness(camera.project, tmp_path / "harness_camera")
    info = run_harness(harness, ["info"])[0]
    assert (info["input_w"], info["input_h"], info["output_bytes"], info["person_index"]) == (96, 96, 2, 1)
    assert 0 < info["arena_used"] <= info["arena_bytes"]
    report = camparity.check_camera(shared, camera.model_dir, harness, tmp_path)
    assert report.frames == len(camparity.SEQUENCE) * len(camparity.VIEWS)
    assert report.inputs_differing == 0 and report.output_max_steps == 0, report.mismatches
    assert report.events_equal and report.events == report.events_twin >= 4, report.mismatches
