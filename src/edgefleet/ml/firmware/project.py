"""Render the ESP-IDF project for a model directory (model.tflite + model_card.json)."""

import logging
import math
from pathlib import Path
from typing import Any, Final

import jinja2
from pydantic import ValidationError

from edgefleet.contracts import SCHEMA_VERSION, ContractError, ModelCard, load_model_card
from edgefleet.dsp import FeatureConfig, FeatureError, codegen, debounce_in_hops, feature_names
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
    "main/inference.h": "main/inference.h.j2",
    "main/inference.cc": "main/inference.cc.j2",
    "main/app_main.cc": "main/app_main.cc.j2",
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
            f"{where}: the ESP-IDF export supports vibration anomaly_detection models, not "
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


def _decision_hops(options: FirmwareOptions, window: int, hop: int) -> tuple[int, int, int]:
    d = options.decision
    k, n, m = debounce_in_hops(d.k, d.n, d.m, window, hop)
    if n > DEBOUNCE_MAX_N:
        raise FirmwareError(
            f"the decision debounce ({d.k} of {d.n} windows) spans {n} hops with window {window} and "
            f"hop {hop}; the firmware keeps at most {DEBOUNCE_MAX_N}: lower n or raise the hop"
        )
    return k, n, m


def render_project(
    card: ModelCard,
    model: bytes,
    target: str,
    options: FirmwareOptions | None = None,
    *,
    where: Path = Path(),
) -> dict[str, bytes]:
    """Every file of the project (path relative to the project root -> content)."""
    from edgefleet.ml.export import c_array
    from edgefleet.ml.tflite_info import read_ops

    options = options or FirmwareOptions()
    esp = get_esp_target(target)
    config = _check_card(card, where / "model_card.json")
    try:
        model_ops = read_ops(model)
    except Exception as err:  # tflite-micro raises plain exceptions on a bad flatbuffer
        raise FirmwareError(f"{where / 'model.tflite'}: not a readable TFLite model: {err}") from err
    if sorted(set(card.ops)) != model_ops:
        raise FirmwareError(
            f"{where}: model_card.json lists ops {sorted(set(card.ops))} but model.tflite uses {model_ops}"
        )
    methods = resolver_methods(model_ops)
    arena = arena_bytes(card.arena_bytes, options)
    _check_budget(card, arena, esp)
    fs, sensor, threshold = card.feature_spec, card.sensor, card.threshold
    assert fs is not None and sensor is not None and threshold is not None
    assert card.input.quantization is not None and card.output.quantization is not None
    mpu6050 = set(sensor.axes) <= set(MPU6050_AXES) and fs.sample_rate_hz <= 1000
    accel_fs, gyro_fs = _mpu6050_ranges(card)
    context: dict[str, Any] = {
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


def generate_project(
    model_dir: Path, target: str, out: Path, options: FirmwareOptions | None = None
) -> list[Path]:
    """Write the ESP-IDF project for `model_dir` into `out`; returns the files written.

    Deterministic: the same model directory, target and options give byte-identical files.
    Raises `FirmwareError` for a bad model directory, an op without a TFLite Micro kernel or a model
    over the target's budget (saying by how much).
    """
    card, model = load_model_dir(model_dir)
    files = render_project(card, model, target, options, where=model_dir)
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
