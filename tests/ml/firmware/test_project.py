"""The generated ESP-IDF project: files, ops, arena, determinism and refusals."""

import csv
import io
import json
import re
import shutil
from itertools import pairwise
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgefleet.contracts import load_model_card
from edgefleet.edge.config import DeviceConfig
from edgefleet.edge.decision import DebounceConfig
from edgefleet.edge.guards import GuardConfig
from edgefleet.ml.firmware import (
    PROJECT_FILES,
    RESOLVER_METHODS,
    FirmwareError,
    FirmwareOptions,
    arena_bytes,
    generate_project,
    resolver_methods,
)
from edgefleet.ml.targets import TARGETS, TFLM_RUNTIME_FLASH_BYTES


def read(root: Path, rel: str) -> str:
    return (root / rel).read_text(encoding="utf-8")


def macro(settings: str, name: str) -> str:
    match = re.search(rf"^#define {name} (.+)$", settings, re.MULTILINE)
    assert match, f"{name} not in model_settings.h"
    return match.group(1)


def edit_card(src: Path, dst: Path, **changes: object) -> Path:
    shutil.copytree(src, dst)
    data = json.loads((dst / "model_card.json").read_text())
    data.update(changes)
    (dst / "model_card.json").write_text(json.dumps(data))
    return dst


@pytest.fixture(scope="module")
def project(synth_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fw") / "project"
    written = generate_project(synth_model, "esp32s3", out)
    assert sorted(written) == sorted(out / rel for rel in PROJECT_FILES)
    return out


def test_the_project_has_the_issue_files(project: Path) -> None:
    found = {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()}
    assert found == set(PROJECT_FILES)
    assert "espressif/esp-tflite-micro" in read(project, "main/idf_component.yml")
    sdk = read(project, "sdkconfig.defaults")
    for line in (
        'CONFIG_IDF_TARGET="esp32s3"',
        "CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_240=y",
        "CONFIG_COMPILER_OPTIMIZATION_PERF=y",
        "CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE=y",
        "CONFIG_SPIRAM=y",
        "CONFIG_NN_OPTIMIZED=y",
        'CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="partitions.csv"',
    ):
        assert line in sdk.splitlines()
    assert "app_main" in read(project, "main/app_main.cc") and "## Wiring" in read(project, "README.md")


def test_partitions_have_two_ota_slots_that_fit_4mb(project: Path) -> None:
    rows = [
        [c.strip() for c in row]
        for row in csv.reader(io.StringIO(read(project, "partitions.csv")))
        if row and not row[0].startswith("#")
    ]
    by_name = {r[0]: r for r in rows}
    assert by_name["ota_0"][1:3] == ["app", "ota_0"] and by_name["ota_1"][1:3] == ["app", "ota_1"]
    assert by_name["otadata"][1:3] == ["data", "ota"]
    spans = sorted((int(r[3], 16), int(r[3], 16) + int(r[4], 16)) for r in rows)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in pairwise(spans))
    assert spans[-1][1] <= 4 * 1024 * 1024
    assert all(int(by_name[s][3], 16) % 0x10000 == 0 for s in ("ota_0", "ota_1"))  # app slots: 64 KiB aligned


def test_the_outbox_opens_before_the_model_loads_so_a_boot_rollback_is_queued(project: Path) -> None:
    app = read(project, "main/app_main.cc")
    start = app.index('extern "C" void app_main')
    assert start < app.index("ef_mqtt_start(", start) < app.index("model_ok = load_model()", start)


def test_ops_and_arena_match_the_model_card(project: Path, synth_model: Path) -> None:
    card = load_model_card(synth_model / "model_card.json")
    inference = read(project, "main/inference.cc")
    count = re.search(r"MicroMutableOpResolver<(\d+)>", inference)
    assert count and int(count.group(1)) == len(set(card.ops))
    assert sorted(re.findall(r"resolver\.(Add\w+)\(\)", inference)) == sorted(
        RESOLVER_METHODS[o] for o in card.ops
    )
    settings = read(project, "main/model_settings.h")
    assert int(macro(settings, "EF_MODEL_ARENA_BYTES")) == card.arena_bytes
    arena = int(macro(settings, "EF_ARENA_BYTES"))
    assert arena == arena_bytes(card.arena_bytes, FirmwareOptions()) and arena % 16 == 0
    assert card.arena_bytes + 1024 <= arena <= TARGETS["esp32-s3"].sram_budget_bytes
    model = (synth_model / "model.tflite").read_bytes()
    values = bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", read(project, "main/model_data.cc")))
    assert values == model


def test_settings_carry_the_card_exactly(project: Path, synth_model: Path) -> None:
    card = load_model_card(synth_model / "model_card.json")
    fs, threshold, qin = card.feature_spec, card.threshold, card.input.quantization
    assert fs is not None and threshold is not None and qin is not None
    settings = read(project, "main/model_settings.h")
    assert float(macro(settings, "EF_THRESHOLD")) == threshold.value
    assert float(macro(settings, "EF_INPUT_SCALE")) == qin.scale
    assert int(macro(settings, "EF_INPUT_ZERO_POINT")) == qin.zero_point
    assert (int(macro(settings, "EF_WINDOW")), int(macro(settings, "EF_HOP"))) == (fs.window, fs.hop)
    assert int(macro(settings, "EF_N_FEATURES")) == len(fs.names)
    mean_block = settings.split("#define EF_FEATURE_MEAN_INIT {", 1)[1].split("}", 1)[0]
    assert [float(v) for v in re.findall(r"[-0-9.e+]+", mean_block.replace("\\", ""))] == fs.mean


def test_generation_is_deterministic(project: Path, synth_model: Path, tmp_path: Path) -> None:
    # A re-export of the same model (another `created` time in its card) gives byte-identical files.
    again = edit_card(synth_model, tmp_path / "model", created="2031-01-01T00:00:00Z")
    generate_project(again, "esp32s3", tmp_path / "fw")
    for rel in PROJECT_FILES:
        assert (tmp_path / "fw" / rel).read_bytes() == (project / rel).read_bytes(), rel


def test_esp32_target_has_its_own_pins_and_no_psram(synth_model: Path, tmp_path: Path) -> None:
    generate_project(synth_model, "esp32", tmp_path)
    sdk = read(tmp_path, "sdkconfig.defaults")
    assert 'CONFIG_IDF_TARGET="esp32"' in sdk and "CONFIG_SPIRAM" not in sdk
    assert macro(read(tmp_path, "main/model_settings.h"), "EF_I2C_SDA_GPIO") == "21"


def test_an_over_budget_model_is_refused_saying_by_how_much(synth_model: Path, tmp_path: Path) -> None:
    big = edit_card(synth_model, tmp_path / "big", arena_bytes=70_000)
    need = arena_bytes(70_000, FirmwareOptions())
    with pytest.raises(FirmwareError, match=rf"exceeds the 65536 B SRAM budget by {need - 65536} B"):
        generate_project(big, "esp32s3", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    heavy = edit_card(synth_model, tmp_path / "heavy", flash_bytes=500_000)
    over = 500_000 + TFLM_RUNTIME_FLASH_BYTES - 512 * 1024
    with pytest.raises(FirmwareError, match=rf"does not fit esp32-s3: .*flash budget by {over} B"):
        generate_project(heavy, "esp32s3", tmp_path / "out")
    # The arena alone fits the ESP32-S3 (64 KiB) but not with the margin on the ESP32 (48 KiB).
    mid = edit_card(synth_model, tmp_path / "mid", arena_bytes=40_000)
    generate_project(mid, "esp32s3", tmp_path / "ok")
    with pytest.raises(FirmwareError, match="does not fit esp32: tensor arena 50000 B"):
        generate_project(mid, "esp32", tmp_path / "out")


def test_an_op_without_a_tflm_kernel_is_refused(synth_model: Path, tmp_path: Path) -> None:
    import tensorflow as tf

    card = load_model_card(synth_model / "model_card.json")
    n = card.input.shape[1]

    @tf.function(input_signature=[tf.TensorSpec([1, n], tf.float32)])  # type: ignore[untyped-decorator]
    def top_k(x: tf.Tensor) -> tf.Tensor:
        return tf.math.top_k(x, k=n).values

    converter = tf.lite.TFLiteConverter.from_concrete_functions([top_k.get_concrete_function()], top_k)
    model_dir = edit_card(synth_model, tmp_path / "topk", ops=["TOPK_V2"])
    (model_dir / "model.tflite").write_bytes(converter.convert())
    with pytest.raises(FirmwareError, match="uses TOPK_V2, which TFLite Micro cannot run"):
        generate_project(model_dir, "esp32s3", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_resolver_methods_name_every_missing_op() -> None:
    assert resolver_methods(["RESHAPE", "FULLY_CONNECTED", "RESHAPE"]) == [
        ("FULLY_CONNECTED", "AddFullyConnected"),
        ("RESHAPE", "AddReshape"),
    ]
    with pytest.raises(FirmwareError, match="uses NON_MAX_SUPPRESSION_V5, UNIQUE, which"):
        resolver_methods(["UNIQUE", "CONV_2D", "NON_MAX_SUPPRESSION_V5"])


def test_bad_model_directories_are_refused_clearly(synth_model: Path, tmp_path: Path) -> None:
    with pytest.raises(FirmwareError, match="no model card"):
        generate_project(tmp_path, "esp32s3", tmp_path / "out")
    lying = edit_card(synth_model, tmp_path / "lying", ops=["FULLY_CONNECTED", "RESHAPE"])
    with pytest.raises(FirmwareError, match=r"lists ops .* but model\.tflite uses"):
        generate_project(lying, "esp32s3", tmp_path / "out")
    broken = edit_card(synth_model, tmp_path / "broken")
    (broken / "model_card.json").write_text("{not json")
    with pytest.raises(FirmwareError, match=r"model_card\.json: not a valid model card"):
        generate_project(broken, "esp32s3", tmp_path / "out")
    with pytest.raises(FirmwareError, match="unknown ESP-IDF target 'rp2040'"):
        generate_project(synth_model, "rp2040", tmp_path / "out")


def test_defaults_decide_as_the_python_runtime() -> None:
    opts, device = FirmwareOptions(), DeviceConfig(device_id="x")
    assert (opts.decision.k, opts.decision.n, opts.decision.m, opts.hysteresis) == (
        DebounceConfig().k, DebounceConfig().n, DebounceConfig().m, DebounceConfig().hysteresis,
    )  # fmt: skip
    assert (opts.fault.k, opts.fault.n, opts.fault.m) == (device.fault.k, device.fault.n, device.fault.m)
    guards = GuardConfig()
    fields = (
        "range_tolerance",
        "saturation_fraction",
        "saturation_run",
        "stuck_ptp",
        "frozen_run",
        "gap_factor",
    )
    assert [getattr(opts, f) for f in fields] == [getattr(guards, f) for f in fields]
    assert opts.alert_gpio == device.gpio_pin
    rule, r = opts.rule, device.rule
    assert (rule.enabled, rule.to_m_s2, rule.band_hz, rule.zone_limits_mm_s, rule.alarm_zone) == (
        r.enabled, r.to_m_s2, r.band_hz, r.zone_limits_mm_s, r.alarm_zone,
    )  # fmt: skip
    assert r.axes == [0, 1, 2]  # the MPU6050's accelerometer: the firmware takes the axes in g
    d = device.rule_debounce
    assert (rule.debounce.k, rule.debounce.n, rule.debounce.m, d.hysteresis) == (d.k, d.n, d.m, 1.0)
    assert opts.drift.model_dump() == device.drift.model_dump()
    # on-device commissioning: the same settings; `capacity` sizes the firmware's buffers only
    assert opts.commissioning.model_dump(exclude={"capacity"}) == device.commissioning.model_dump()


def cli() -> "object":
    import typer

    from edgefleet.cli.firmware_cmd import export

    app = typer.Typer()
    app.command()(export)
    return app


def test_cli_export_writes_the_project(synth_model: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli(), [str(synth_model), "--target", "esp32s3", "--format", "esp-idf",  # type: ignore[arg-type]
                                   "--out", str(tmp_path / "fw")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fw/main/inference.cc").is_file() and "idf.py set-target esp32s3" in result.output


def test_cli_refuses_bad_format_target_and_budget(synth_model: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    app = cli()
    bad_format = runner.invoke(app, [str(synth_model), "--format", "arduino", "--out", str(tmp_path)])  # type: ignore[arg-type]
    assert bad_format.exit_code == 2 and "unknown format 'arduino'" in bad_format.output
    bad_target = runner.invoke(app, [str(synth_model), "--target", "nrf52840", "--out", str(tmp_path)])  # type: ignore[arg-type]
    assert bad_target.exit_code == 2 and "unknown target 'nrf52840'" in bad_target.output
    big = edit_card(synth_model, tmp_path / "big", arena_bytes=100_000)
    over = runner.invoke(app, [str(big), "--out", str(tmp_path / "fw")])  # type: ignore[arg-type]
    assert over.exit_code == 1 and "SRAM budget by" in over.output
