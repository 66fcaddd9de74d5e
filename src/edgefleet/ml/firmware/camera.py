"""The camera node's ESP-IDF project, for a person-detection model card (`device_kind: camera`).

esp32-camera frames -> `ef_image` (dsp.image's preprocessing, bit-exact) -> the person model in
TFLite Micro (the shared `inference.cc`) -> `ef_presence` (edge.camera's hysteresis and events) ->
the shared platform layer (`ef_platform.h`: provisioning, MQTT, the durable outbox, OTA health).

The project is the vibration node's file set (PROJECT_FILES) without the vibration node's own files
(sensor features, decisions, commissioning), plus CAMERA_FILES; the shared main/CMakeLists.txt,
idf_component.yml and sdkconfig.defaults are rendered and then extended for the camera.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jinja2
import yaml

from edgefleet.contracts import MAX_THUMBNAIL_B64_CHARS, SCHEMA_VERSION, ModelCard, SelfTestCase, TensorSpec
from edgefleet.ml.firmware.errors import FirmwareError
from edgefleet.ml.firmware.options import EspTarget, FirmwareOptions
from edgefleet.ml.firmware.project import (
    PROJECT_FILES,
    _environment,
    arena_bytes,
    checked_resolver_methods,
    get_esp_target,
)
from edgefleet.ml.targets import TARGETS, TFLM_RUNTIME_FLASH_BYTES

CAMERA_FILES: Final[dict[str, str]] = {
    "README.md": "camera/README.md.j2",
    "main/model_settings.h": "camera/main/model_settings.h.j2",
    "main/ef_image.h": "camera/main/ef_image.h.j2",
    "main/ef_image.c": "camera/main/ef_image.c.j2",
    "main/ef_presence.h": "camera/main/ef_presence.h.j2",
    "main/ef_presence.c": "camera/main/ef_presence.c.j2",
    "main/ef_qr_decode.h": "camera/main/ef_qr_decode.h.j2",
    "main/ef_qr_decode.c": "camera/main/ef_qr_decode.c.j2",
    "main/ef_qr_provision.h": "camera/main/ef_qr_provision.h.j2",
    "main/ef_qr_provision.c": "camera/main/ef_qr_provision.c.j2",
    "main/ef_qr_camera.h": "camera/main/ef_qr_camera.h.j2",
    "main/ef_qr_camera.cc": "camera/main/ef_qr_camera.cc.j2",
    "main/app_main.cc": "camera/main/app_main.cc.j2",
}
# The vibration node's own files: its sensor, features, decision core, commissioning and messages.
VIBRATION_ONLY: Final = frozenset(
    {
        "main/features.h",
        "main/features.c",
        "main/ef_core.h",
        "main/ef_core.c",
        "main/ef_rule.c",
        "main/ef_card.h",
        "main/ef_card.c",
        "main/ef_card_parse.h",
        "main/ef_card_parse.c",
        "main/ef_card_json.c",
        "main/ef_commission.h",
        "main/ef_commission.c",
        "main/ef_threshold.h",
        "main/ef_threshold.c",
        "main/ef_sensor.h",
        "main/ef_sensor.cc",
        "main/ef_messages.h",
        "main/ef_messages.cc",
    }
)
ESP32_CAMERA: Final = ("espressif/esp32-camera", "2.1.5")
# The QR decoder behind ef_qr_decode.c: Espressif's prebuilt code scanner (ESP32, ESP32-S3). Its
# registry versions could not be looked up here, so the first `idf.py build` picks one and pins it in
# dependencies.lock; espressif/quirc "^1.2.0" (open source) is the drop-in alternative.
ESP_CODE_SCANNER: Final = ("espressif/esp-code-scanner", "*")
LABELS: Final = ("no_person", "person")  # edge.camera.person.DEFAULT_LABELS
DEFAULT_THRESHOLD_ON: Final = 0.6  # edge.camera.DetectionConfig.threshold_on

FRAME_SIZES: Final[dict[str, tuple[int, int]]] = {  # esp32-camera FRAMESIZE_* -> (width, height)
    "96X96": (96, 96),
    "QQVGA": (160, 120),
    "240X240": (240, 240),
    "QVGA": (320, 240),
    "CIF": (400, 296),
    "VGA": (640, 480),
}


@dataclass(frozen=True)
class CameraBoard:
    name: str
    idf_target: str
    octal_psram: bool
    pwdn: int
    reset: int
    xclk: int
    siod: int
    sioc: int
    data: tuple[int, int, int, int, int, int, int, int]  # D7 (Y9) .. D0 (Y2)
    vsync: int
    href: int
    pclk: int
    xclk_hz: int = 20_000_000


# Pins from the boards' schematics and esp32-camera's examples (PWDN, RESET, XCLK, SIOD, SIOC, D7..D0,
# VSYNC, HREF, PCLK); not tried on the boards here.
# fmt: off
BOARDS: Final[dict[str, CameraBoard]] = {
    "esp32s3-eye": CameraBoard("ESP32-S3-EYE", "esp32s3", True,
                               -1, -1, 15, 4, 5, (16, 17, 18, 12, 10, 8, 9, 11), 6, 7, 13),
    "xiao-esp32s3-sense": CameraBoard("Seeed XIAO ESP32S3 Sense", "esp32s3", True,
                                      -1, -1, 10, 40, 39, (48, 11, 12, 14, 16, 18, 17, 15), 38, 47, 13),
    "esp32-cam": CameraBoard("AI-Thinker ESP32-CAM", "esp32", False,
                             32, -1, 0, 26, 27, (35, 34, 39, 36, 21, 19, 18, 5), 25, 23, 22),
}
# fmt: on
DEFAULT_BOARDS: Final = {"esp32s3": "esp32s3-eye", "esp32": "esp32-cam"}
# Internal SRAM for the camera node's tensor arena (frame buffers live in PSRAM, and there is no
# sensor ring or feature buffers): the S3's 512 KiB and the ESP32's 320 KiB of data RAM, less
# Wi-Fi, TLS, MQTT and the camera driver. The vibration node's budgets (ml.targets) are smaller.
CAMERA_ARENA_BUDGET: Final = {"esp32s3": 160 * 1024, "esp32": 112 * 1024}


def is_camera_card(card: ModelCard) -> bool:
    return card.device_kind == "camera"


def camera_input_size(spec: TensorSpec, where: Path) -> tuple[int, int]:
    """(height, width) of an int8 [1, H, W, 1] input taking pixels as `p - 128`; the twin's rule
    (edge.camera.preprocess.check_camera_model_input): scale within 1 % of 1/128, |zero point| <= 1.
    The firmware feeds `p - 128` exactly as dsp.image does; it does not re-quantize with the card's
    scale and zero point, which would differ from the twin by a step."""
    if spec.dtype != "int8" or len(spec.shape) != 4 or spec.shape[0] != 1 or spec.shape[3] != 1:
        raise FirmwareError(
            f"{where}: a camera model needs an int8 [1, H, W, 1] input, got {spec.dtype} {spec.shape}"
        )
    quant = spec.quantization
    if quant is None or abs(quant.scale * 128 - 1) > 0.01 or abs(quant.zero_point) > 1:
        raise FirmwareError(
            f"{where}: a camera model must take pixels as int8 `p - 128` (input scale ~1/128, "
            f"zero point ~0); this one has {quant}"
        )
    if spec.shape[1] > 100 * spec.shape[2]:
        raise FirmwareError(
            f"{where}: an input over 100 times taller than wide is not supported ({spec.shape})"
        )
    return spec.shape[1], spec.shape[2]


def _check_camera_card(card: ModelCard, where: Path) -> tuple[int, int, int]:
    """(height, width, index of `person` in the output)."""
    if card.task != "person_detection":
        raise FirmwareError(f"{where}: the camera export needs a person_detection model, not {card.task}")
    height, width = camera_input_size(card.input, where)
    labels = tuple(card.labels) or LABELS
    out = card.output
    if (
        out.dtype != "int8"
        or out.quantization is None
        or "person" not in labels
        or out.shape[-1] != len(labels)
    ):
        raise FirmwareError(
            f"{where}: the output must be int8 [{', '.join(LABELS)}] with quantization; "
            f"the card says {out.dtype} {out.shape}, labels {list(labels)}"
        )
    return height, width, labels.index("person")


def _board(options: FirmwareOptions, esp: EspTarget) -> CameraBoard:
    name = options.camera.board or DEFAULT_BOARDS[esp.idf_target]
    board = BOARDS[name]
    if board.idf_target != esp.idf_target:
        raise FirmwareError(f"the {board.name} board is an {board.idf_target}, not an {esp.idf_target}")
    return board


def camera_pins(board: CameraBoard) -> frozenset[int]:
    """The GPIOs the camera drives or reads (-1: not wired)."""
    pins = {board.pwdn, board.reset, board.xclk, board.siod, board.sioc, board.vsync, board.href, board.pclk}
    return frozenset(pins | set(board.data)) - {-1}


def reset_gpio(options: FirmwareOptions, board: CameraBoard) -> int:
    """The reset button's GPIO: by default GPIO 0 (the BOOT button) unless the camera uses it (the
    esp32-cam's XCLK: a button configured there stops the camera's clock), then none (-1)."""
    pins = camera_pins(board)
    if options.reset_gpio is None:
        return -1 if 0 in pins else 0
    if options.reset_gpio in pins:
        raise FirmwareError(
            f"reset_gpio {options.reset_gpio} is a camera pin of the {board.name} "
            f"(camera pins: {', '.join(map(str, sorted(pins)))}); choose another GPIO or -1 (no button)"
        )
    return options.reset_gpio


def _check_camera_budget(card: ModelCard, arena: int, esp: EspTarget) -> None:
    budget, flash_budget = CAMERA_ARENA_BUDGET[esp.idf_target], TARGETS[esp.budget_target].flash_budget_bytes
    problems = []
    if arena > budget:
        problems.append(f"tensor arena {arena} B exceeds the camera node's {budget} B by {arena - budget} B")
    if card.flash_bytes + TFLM_RUNTIME_FLASH_BYTES > flash_budget:
        flash = card.flash_bytes + TFLM_RUNTIME_FLASH_BYTES
        problems.append(f"model + TFLM runtime {flash} B exceed {flash_budget} B by {flash - flash_budget} B")
    if problems:
        raise FirmwareError(
            f"model {card.model_id} does not fit a camera node on {esp.idf_target}: " + "; ".join(problems)
        )


def _thresholds(card: ModelCard, options: FirmwareOptions) -> float:
    cam = options.camera
    on = cam.threshold_on or (card.threshold.value if card.threshold else DEFAULT_THRESHOLD_ON)
    if not 0 <= cam.threshold_off < on <= 1:
        raise FirmwareError(
            f"presence thresholds need 0 <= off < on <= 1, got off {cam.threshold_off}, on {on}"
        )
    return on


def render_portable(path: str) -> bytes:
    """One of the camera's portable C files that take nothing from the model (`main/ef_image.c`,
    `main/ef_qr_provision.c`, ...), for host tests that build them without a model."""
    template = CAMERA_FILES.get(path)
    if template is None or path in ("README.md", "main/model_settings.h", "main/app_main.cc"):
        raise FirmwareError(f"{path} is not a portable file of the camera project")
    try:
        return _environment().get_template(template).render({}).encode()
    except jinja2.UndefinedError as err:
        raise FirmwareError(f"{path} depends on the model: {err}") from err


def camera_file_set() -> dict[str, str | None]:
    """Output path -> template of the camera project (None: produced in Python)."""
    files = {path: t for path, t in PROJECT_FILES.items() if path not in VIBRATION_ONLY}
    files.update(CAMERA_FILES)
    return files


def _camera_cmake(shared: str) -> str:
    """The shared main/CMakeLists.txt with the camera's sources instead of the vibration node's."""
    dropped = {Path(p).name for p in VIBRATION_ONLY if p.endswith((".c", ".cc"))}
    text = re.sub(r'\s*"(' + "|".join(map(re.escape, sorted(dropped))) + r')"', "", shared)
    sources = " ".join(
        f'"{Path(p).name}"' for p in CAMERA_FILES if p.endswith((".c", ".cc")) and "app_main" not in p
    )
    if text.count('"app_main.cc"') != 1:
        raise FirmwareError('main/CMakeLists.txt.j2 no longer lists "app_main.cc" once; update camera.py')
    text = text.replace('"app_main.cc"', f'"app_main.cc" {sources}')
    return (
        text
        + "# Camera node: esp32-camera comes from idf_component.yml. ef_image.c reproduces numpy's and\n"
        + "# Pillow's rounding step by step: no fused multiply-add.\n"
        + 'set_source_files_properties(ef_image.c PROPERTIES COMPILE_OPTIONS "-ffp-contract=off")\n'
    )


def _camera_components(shared: str) -> str:
    try:
        manifest = yaml.safe_load(shared) or {}
        dependencies = manifest.setdefault("dependencies", {})
    except (yaml.YAMLError, AttributeError) as err:
        raise FirmwareError(f"the shared idf_component.yml is not a YAML mapping: {err}") from err
    dependencies[ESP32_CAMERA[0]] = ESP32_CAMERA[1]
    dependencies[ESP_CODE_SCANNER[0]] = ESP_CODE_SCANNER[1]
    header = "".join(line + "\n" for line in shared.splitlines() if line.startswith("#"))
    return (
        header
        + "## Camera node: the esp32-camera driver (frames, frame2jpg) added, and esp-code-scanner (a\n"
        + "## prebuilt library) for the provisioning QR code: no version of it was checked, the first build\n"
        + '## pins one in dependencies.lock; `espressif/quirc: "^1.2.0"` can replace it (ef_qr_decode.c).\n'
        + yaml.safe_dump(manifest, sort_keys=False)
    )


def _camera_sdkconfig(shared: str, board: CameraBoard) -> str:
    lines = [
        f"# Camera node ({board.name}): frame buffers live in PSRAM, so PSRAM is required",
        "CONFIG_SPIRAM=y",
        "# CONFIG_SPIRAM_IGNORE_NOTFOUND is not set",
        "CONFIG_SPIRAM_USE_MALLOC=y",
    ]
    if board.octal_psram:
        lines.append("CONFIG_SPIRAM_MODE_OCT=y")
    return shared.rstrip("\n") + "\n" + "\n".join(lines) + "\n"


def render_camera_project(
    card: ModelCard,
    model: bytes,
    target: str,
    options: FirmwareOptions,
    *,
    where: Path = Path(),
    self_test: Sequence[SelfTestCase] = (),
) -> dict[str, bytes]:
    """Every file of the camera node's project (path -> content); see render_project."""
    from edgefleet.ml.export import c_array

    esp = get_esp_target(target)
    height, width, person_index = _check_camera_card(card, where / "model_card.json")
    methods = checked_resolver_methods(card, model, where)
    arena = arena_bytes(card.arena_bytes, options)
    _check_camera_budget(card, arena, esp)
    board = _board(options, esp)
    frame_w, frame_h = FRAME_SIZES[options.camera.frame_size]
    if frame_w < width or frame_h < height:
        raise FirmwareError(
            f"the camera frame {options.camera.frame_size} ({frame_w}x{frame_h}) is smaller than the model's "
            f"input ({width}x{height}); choose a larger frame_size"
        )
    assert card.input.quantization is not None and card.output.quantization is not None
    context: dict[str, Any] = {
        "kind": "camera",
        "card": card,
        "options": options,
        "cam": options.camera,
        "esp": esp,
        "budget": TARGETS[esp.budget_target],
        "arena_budget": CAMERA_ARENA_BUDGET[esp.idf_target],
        "board": board,
        "arena_bytes": arena,
        "ops": methods,
        "schema_version": SCHEMA_VERSION,
        "model_bytes": len(model),
        "in_q": card.input.quantization,
        "out_q": card.output.quantization,
        "input_h": height,
        "input_w": width,
        "labels": list(card.labels) or list(LABELS),
        "person_index": person_index,
        "threshold_on": _thresholds(card, options),
        "frame_w": frame_w,
        "frame_h": frame_h,
        "self_test": list(self_test),
        "server_ca": options.server_ca_pem,
        "reset_gpio": reset_gpio(options, board),
        "reset_pin_clash": [f"CONFIG_EF_RESET_GPIO == {pin}" for pin in sorted(camera_pins(board))],
        "thumbnail_b64_max": min(options.camera.thumbnail_b64_max, MAX_THUMBNAIL_B64_CHARS),
        "project_name": "edgefleet_" + "".join(c if c.isalnum() else "_" for c in card.model_id),
    }
    env = _environment()
    header, source = c_array(model)
    produced = {"main/model_data.h": header, "main/model_data.cc": source}
    files: dict[str, bytes] = {}
    for path, template in camera_file_set().items():
        if template is None:
            if path not in produced:
                raise FirmwareError(
                    f"{path}: produced in Python for the vibration node only; update camera.py"
                )
            text = produced[path]
        else:
            text = env.get_template(template).render(context)
        if path == "main/CMakeLists.txt":
            text = _camera_cmake(text)
        elif path == "main/idf_component.yml":
            text = _camera_components(text)
        elif path == "sdkconfig.defaults":
            text = _camera_sdkconfig(text, board)
        files[path] = text.encode()
    return files
