"""Render the ESP-IDF project for a model directory (model.tflite + model_card.json)."""

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import jinja2
from pydantic import ValidationError

from edgefleet.contracts import SCHEMA_VERSION, ContractError, ModelCard, SelfTestCase, load_model_card
from edgefleet.dsp import FeatureConfig, FeatureError, codegen, codegen_fft, debounce_in_hops, feature_names
from edgefleet.ml.firmware.errors import FirmwareError
from edgefleet.ml.firmware.ops import resolver_methods
from edgefleet.ml.firmware.options import ESP_IDF_TARGETS, EspTarget, FirmwareOptions
from edgefleet.ml.targets import TARGETS, TFLM_RUNTIME_FLASH_BYTES

log = logging.getLogger(__name__)

# Output path -> template (None: not a template, produced in Python).
PROJECT_FILES: Final[dict[str, str | None]] = {
    "CMakeLists.txt": "CMakeLists.txt.j2",
    "sdkconfig.defaults": "sdkconfig.defaults.j2",
    "partitions.csv": "partitions.csv.j2",
    "README.md": "README.md.j2",
    "main/CMakeLists.txt": "main/CMakeLists.txt.j2",
    "main/idf_component.yml": "main/idf_component.yml.j2",
    "main/Kconfig.projbuild": "main/Kconfig.projbuild.j2",
    "main/model_data.h": None,
    "main/model_data.cc": None,
    "main/model_settings.h": "main/model_settings.h.j2",
    "main/features.h": None,
    "main/features.c": None,
    "main/ef_core.h": "main/ef_core.h.j2",
    "main/ef_core.c": "main/ef_core.c.j2",
    "main/ef_rule.c": "main/ef_rule.c.j2",
    "main/ef_card.h": "main/ef_card.h.j2",
    "main/ef_card.c": "main/ef_card.c.j2",
    "main/ef_card_parse.h": "main/ef_card_parse.h.j2",
    "main/ef_card_parse.c": "main/ef_card_parse.c.j2",
    "main/ef_card_json.c": "main/ef_card_json.c.j2",
    "main/ef_commission.h": "main/ef_commission.h.j2",
    "main/ef_commission.c": "main/ef_commission.c.j2",
    "main/ef_threshold.h": "main/ef_threshold.h.j2",
    "main/ef_threshold.c": "main/ef_threshold.c.j2",
    "main/ef_json.h": "main/ef_json.h.j2",
    "main/ef_json.c": "main/ef_json.c.j2",
    "main/ef_wire.h": "main/ef_wire.h.j2",
    "main/ef_wire.c": "main/ef_wire.c.j2",
    "main/ef_outbox.h": "main/ef_outbox.h.j2",
    "main/ef_outbox.c": "main/ef_outbox.c.j2",
    "main/ef_outbox_send.c": "main/ef_outbox_send.c.j2",
    "main/ef_cmd.h": "main/ef_cmd.h.j2",
    "main/ef_cmd.c": "main/ef_cmd.c.j2",
    "main/ef_provision.h": "main/ef_provision.h.j2",
    "main/ef_provision.c": "main/ef_provision.c.j2",
    "main/ef_ota.h": "main/ef_ota.h.j2",
    "main/ef_ota.c": "main/ef_ota.c.j2",
    "main/ef_ota_msg.c": "main/ef_ota_msg.c.j2",
    "main/ef_ota_slot.c": "main/ef_ota_slot.c.j2",
    "main/ef_ota_verify.c": "main/ef_ota_verify.c.j2",
    "main/ef_tflite.h": "main/ef_tflite.h.j2",
    "main/ef_tflite.c": "main/ef_tflite.c.j2",
    "main/inference.h": "main/inference.h.j2",
    "main/inference.cc": "main/inference.cc.j2",
    "main/app_main.cc": "main/app_main.cc.j2",
    # The ESP-IDF platform layer (ef_platform.h), shared with the camera node
    "main/ef_platform.h": "main/ef_platform.h.j2",
    "main/ef_storage.cc": "main/ef_storage.cc.j2",
    "main/ef_claim.cc": "main/ef_claim.cc.j2",
    "main/ef_wifi_prov.cc": "main/ef_wifi_prov.cc.j2",
    "main/ef_mqtt.cc": "main/ef_mqtt.cc.j2",
    "main/ef_ota_client.h": "main/ef_ota_client.h.j2",
    "main/ef_ota_client.cc": "main/ef_ota_client.cc.j2",
    "main/server_ca.pem": "main/server_ca.pem.j2",
    # The vibration node on top of it
    "main/ef_sensor.h": "main/ef_sensor.h.j2",
    "main/ef_sensor.cc": "main/ef_sensor.cc.j2",
    "main/ef_messages.h": "main/ef_messages.h.j2",
    "main/ef_messages.cc": "main/ef_messages.cc.j2",
    "main/ef_self_test.h": "main/ef_self_test.h.j2",
    "sdkconfig.production": "sdkconfig.production.j2",
}
MPU6050_AXES: Final = ("ax", "ay", "az", "gx", "gy", "gz")
DEBOUNCE_MAX_N: Final = 64  # EF_DEBOUNCE_MAX_N in ef_core.h
ACCEL_RANGES_G: Final = (2, 4, 8, 16)
GYRO_RANGES_DPS: Final = (250, 500, 1000, 2000)


def c_double(value: float) -> str:
    """A C literal holding exactly this double."""
    if not math.isfinite(value):
        raise FirmwareError(f"cannot write {value!r} into C source")
    text = repr(float(value))
    return text if any(c in text for c in ".eE") else text + ".0"


def c_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def arena_bytes(card_arena: int, options: FirmwareOptions) -> int:
    """The card's measured arena plus the margin, rounded up to 16 bytes."""
    margin = max(options.arena_margin_min_bytes, math.ceil(card_arena * options.arena_margin))
    return -(-(card_arena + margin) // 16) * 16


def card_target_far(card: ModelCard) -> float:
    """The per-window false-alarm rate the card's threshold aims at, as the Python runtime reads it."""
    assert card.threshold is not None
    far = card.threshold.target_false_alarm_rate
    if far is None and card.threshold.percentile is not None:
        far = 1.0 - card.threshold.percentile / 100.0
    return far or 0.01


def get_esp_target(name: str) -> EspTarget:
    try:
        return ESP_IDF_TARGETS[name]
    except KeyError:
        raise FirmwareError(f"unknown ESP-IDF target {name!r}; known: {', '.join(ESP_IDF_TARGETS)}") from None


def load_model_dir(model_dir: Path) -> tuple[ModelCard, bytes]:
    card_path, model_path = model_dir / "model_card.json", model_dir / "model.tflite"
    if not card_path.is_file():
        raise FirmwareError(f"{card_path}: no model card (is {model_dir} a model directory?)")
    try:
        card = load_model_card(card_path)
    except (ContractError, ValidationError, ValueError, OSError) as err:
        raise FirmwareError(f"{card_path}: not a valid model card: {err}") from err
    try:
        model = model_path.read_bytes()
    except OSError as err:
        raise FirmwareError(f"{model_path}: cannot read the model: {err.strerror}") from err
    return card, model


def _check_card(card: ModelCard, where: Path) -> FeatureConfig:
    if card.task != "anomaly_detection" or card.device_kind != "vibration":
        raise FirmwareError(
            f"{where}: the ESP-IDF export supports vibration anomaly_detection and camera "
            "person_detection models, not "
            f"{card.device_kind} {card.task}"
        )
    fs, sensor, threshold = card.feature_spec, card.sensor, card.threshold
    if fs is None or sensor is None or threshold is None:
        raise FirmwareError(f"{where}: the model card needs feature_spec, sensor and threshold")
    for role, tensor in (("input", card.input), ("output", card.output)):
        if tensor.dtype != "int8" or tensor.quantization is None:
            raise FirmwareError(
                f"{where}: the {role} tensor must be int8 with quantization, got {tensor.dtype}"
            )
        if tensor.shape != [1, len(fs.names)]:
            raise FirmwareError(
                f"{where}: the {role} tensor shape {tensor.shape} is not [1, {len(fs.names)}] "
                "(one value per feature)"
            )
    try:
        config = FeatureConfig.from_spec(fs.sample_rate_hz, sensor.axes, fs.sets, fs.bands_hz)
    except FeatureError as err:
        raise FirmwareError(f"{where}: feature_spec: {err}") from err
    if feature_names(config) != fs.names:
        raise FirmwareError(
            f"{where}: feature_spec.names do not match the features dsp computes for this spec"
        )
    return config


def _check_budget(card: ModelCard, arena: int, target: EspTarget) -> None:
    budget = TARGETS[target.budget_target]
    problems = []
    if arena > budget.sram_budget_bytes:
        problems.append(
            f"tensor arena {arena} B (card {card.arena_bytes} B + margin) exceeds the "
            f"{budget.sram_budget_bytes} B SRAM budget by {arena - budget.sram_budget_bytes} B"
        )
    flash = card.flash_bytes + TFLM_RUNTIME_FLASH_BYTES
    if flash > budget.flash_budget_bytes:
        problems.append(
            f"model + TFLM runtime {flash} B exceed the {budget.flash_budget_bytes} B flash budget "
            f"by {flash - budget.flash_budget_bytes} B"
        )
    if problems:
        raise FirmwareError(f"model {card.model_id} does not fit {budget.name}: " + "; ".join(problems))


def _mpu6050_ranges(card: ModelCard) -> tuple[int, int]:
    assert card.sensor is not None
    limits = {
        a: max(abs(lo), abs(hi))
        for a, lo, hi in zip(card.sensor.axes, card.sensor.range_min, card.sensor.range_max, strict=True)
    }
    accel = max((v for a, v in limits.items() if a.startswith("a")), default=2.0)
    gyro = max((v for a, v in limits.items() if a.startswith("g")), default=250.0)
    return (
        next((r for r in ACCEL_RANGES_G if r >= accel - 1e-9), ACCEL_RANGES_G[-1]),
        next((r for r in GYRO_RANGES_DPS if r >= gyro - 1e-9), GYRO_RANGES_DPS[-1]),
    )


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("edgefleet.ml.firmware", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["c_double"] = c_double
    env.filters["c_float"] = lambda v: c_double(v) + "f"
    env.filters["c_string"] = c_string
    return env


def render_model_independent(path: str) -> bytes:
    """One project file that takes nothing from the model (the fleet modules: `main/ef_wire.c`,
    `main/ef_outbox.c`, ...), rendered as `render_project` renders it; host tests build these
    without training a model. A template that needs the model's context raises FirmwareError."""
    template = PROJECT_FILES.get(path)
    if template is None:
        raise FirmwareError(f"{path} is not a template of the ESP-IDF project")
    try:
        return _environment().get_template(template).render({}).encode()
    except jinja2.UndefinedError as err:
        raise FirmwareError(f"{path} depends on the model: {err}") from err


def _decision_hops(options: FirmwareOptions, window: int, hop: int) -> tuple[int, int, int]:
    d = options.decision
    k, n, m = debounce_in_hops(d.k, d.n, d.m, window, hop)
    if n > DEBOUNCE_MAX_N:
        raise FirmwareError(
            f"the decision debounce ({d.k} of {d.n} windows) spans {n} hops with window {window} and "
            f"hop {hop}; the firmware keeps at most {DEBOUNCE_MAX_N}: lower n or raise the hop"
        )
    return k, n, m


def checked_resolver_methods(card: ModelCard, model: bytes, where: Path) -> list[tuple[str, str]]:
    """The model's ops with their resolver methods, after checking the card lists the same ops."""
    from edgefleet.ml.tflite_info import read_ops

    try:
        model_ops = read_ops(model)
    except Exception as err:  # tflite-micro raises plain exceptions on a bad flatbuffer
        raise FirmwareError(f"{where / 'model.tflite'}: not a readable TFLite model: {err}") from err
    if sorted(set(card.ops)) != model_ops:
        raise FirmwareError(
            f"{where}: model_card.json lists ops {sorted(set(card.ops))} but model.tflite uses {model_ops}"
        )
    return resolver_methods(model_ops)


def render_project(
    card: ModelCard,
    model: bytes,
    target: str,
    options: FirmwareOptions | None = None,
    *,
    where: Path = Path(),
    self_test: Sequence[SelfTestCase] = (),
) -> dict[str, bytes]:
    """Every file of the project (path relative to the project root -> content).

    `self_test`: the model's self-test vectors (`self_test.json` of the model directory), compiled
    into the firmware so a new app proves its model before it is marked valid."""
    from edgefleet.ml.export import c_array

    options = options or FirmwareOptions()
    if card.device_kind == "camera":
        from edgefleet.ml.firmware.camera import render_camera_project

        return render_camera_project(card, model, target, options, where=where, self_test=self_test)
    esp = get_esp_target(target)
    config = _check_card(card, where / "model_card.json")
    methods = checked_resolver_methods(card, model, where)
    arena = arena_bytes(card.arena_bytes, options)
    _check_budget(card, arena, esp)
    fs, sensor, threshold = card.feature_spec, card.sensor, card.threshold
    assert fs is not None and sensor is not None and threshold is not None
    assert card.input.quantization is not None and card.output.quantization is not None
    mpu6050 = set(sensor.axes) <= set(MPU6050_AXES) and fs.sample_rate_hz <= 1000
    accel_fs, gyro_fs = _mpu6050_ranges(card)
    context: dict[str, Any] = {
        "kind": "vibration",
        "card": card,
        "fs": fs,
        "sensor": sensor,
        "threshold": threshold.value,
        "in_q": card.input.quantization,
        "out_q": card.output.quantization,
        "options": options,
        "decision_hops": _decision_hops(options, fs.window, fs.hop),
        "esp": esp,
        "budget": TARGETS[esp.budget_target],
        "i2c_sda": esp.default_sda if options.i2c_sda is None else options.i2c_sda,
        "i2c_scl": esp.default_scl if options.i2c_scl is None else options.i2c_scl,
        "arena_bytes": arena,
        "ops": methods,
        "schema_version": SCHEMA_VERSION,
        "mpu6050": mpu6050,
        "rule_axes": [i for i, unit in enumerate(sensor.units) if unit == "g"][:3]
        if options.rule.enabled
        else [],
        "axis_index": [MPU6050_AXES.index(a) if a in MPU6050_AXES else 0 for a in sensor.axes],
        "accel_fs_g": accel_fs,
        "gyro_fs_dps": gyro_fs,
        "model_bytes": len(model),
        "card_target_far": card_target_far(card),
        "features_plan": codegen_fft.fft_plan(fs.window, len(sensor.axes)) if "spectral" in fs.sets else None,
        "self_test": list(self_test),
        "server_ca": options.server_ca_pem,
        "reset_gpio": 0 if options.reset_gpio is None else options.reset_gpio,
        "project_name": "edgefleet_" + "".join(c if c.isalnum() else "_" for c in card.model_id),
    }
    env = _environment()
    header, source = c_array(model)
    features = codegen.generate(config, fs.window)
    files: dict[str, bytes] = {}
    for path, template in PROJECT_FILES.items():
        if template is not None:
            files[path] = env.get_template(template).render(context).encode()
    files["main/model_data.h"] = header.encode()
    files["main/model_data.cc"] = source.encode()
    files["main/features.h"] = features[codegen.HEADER_NAME].encode()
    files["main/features.c"] = features[codegen.SOURCE_NAME].encode()
    return {path: files[path] for path in PROJECT_FILES}


def load_model_self_test(model_dir: Path) -> list[SelfTestCase]:
    """The model directory's `self_test.json` (as `edgefleet model train` writes it); none if absent."""
    from edgefleet.ml.errors import ExportError
    from edgefleet.ml.selftest import SELF_TEST_FILE, load_self_test

    path = model_dir / SELF_TEST_FILE
    if not path.is_file():
        return []
    try:
        return load_self_test(path)
    except ExportError as err:
        raise FirmwareError(str(err)) from err


def generate_project(
    model_dir: Path, target: str, out: Path, options: FirmwareOptions | None = None
) -> list[Path]:
    """Write the ESP-IDF project for `model_dir` into `out`; returns the files written.

    Deterministic: the same model directory, target and options give byte-identical files.
    Raises `FirmwareError` for a bad model directory, an op without a TFLite Micro kernel or a model
    over the target's budget (saying by how much).
    """
    card, model = load_model_dir(model_dir)
    self_test = load_model_self_test(model_dir)
    files = render_project(card, model, target, options, where=model_dir, self_test=self_test)
    written = []
    try:
        for rel, data in files.items():
            path = out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written.append(path)
    except OSError as err:
        raise FirmwareError(f"cannot write the project to {out}: {err}") from err
    log.info("wrote an ESP-IDF project for %s %s to %s", card.model_id, card.model_version, out)
    return written
