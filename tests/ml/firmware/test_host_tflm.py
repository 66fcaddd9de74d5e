"""The generated vibration firmware built on the host against real TFLite Micro (reference kernels).

Its own inference.cc, model_data.cc, features.c and ef_core.c, linked with the vendored
esp-tflite-micro sources, must give the tflite-micro interpreter's int8 outputs (0 steps) on the
card's self-test vectors and on real windows, and the Python runtime's decisions and events window
by window (tests/ml/firmware/hostparity.py, shared with `edgefleet bench firmware`).
"""

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edgefleet.cli.bench_runner import run_benchmark
from edgefleet.contracts import load_model_card
from edgefleet.edge.config import DeviceConfig
from edgefleet.edge.decision import DebounceConfig
from edgefleet.ml.firmware import generate_project
from edgefleet.ml.firmware.hostbuild import (
    HostBuildError,
    build_vibration_harness,
    compile_harness,
    kernel_sources,
    library_key,
    project_ops,
    project_sources,
    run_harness,
    tflm_library,
)
from tests.ml.firmware import hostparity
from tests.ml.firmware.conftest import train_cwru

pytestmark = [pytest.mark.needs("tflm_host"), pytest.mark.slow]


@dataclass(frozen=True)
class Built:
    model_dir: Path
    project: Path
    harness: Path
    window: int
    hop: int


def build(model_dir: Path, root: Path) -> Built:
    generate_project(model_dir, "esp32s3", root / "fw")
    fs = load_model_card(model_dir / "model_card.json").feature_spec
    assert fs is not None
    harness = build_vibration_harness(root / "fw", root / "harness")
    return Built(model_dir, root / "fw", harness, fs.window, fs.hop)


@pytest.fixture(scope="module")
def synth(synth_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(synth_model, tmp_path_factory.mktemp("host-synth"))


@pytest.fixture(scope="module")
def synth_windows(synth: Built) -> np.ndarray:
    return hostparity.synthetic_windows(synth.window, synth.hop)


def assert_parity(report: hostparity.ParityReport) -> None:
    assert report.self_test_cases >= 1 and report.self_test_max_steps == 0
    assert report.scored > 0 and report.output_max_steps == 0, "the firmware's int8 outputs differ"
    # C features (double accumulation) vs numpy: a rounding tie may move one input by one step
    assert report.input_max_steps <= 1 and report.inputs_differing <= report.scored // 100
    assert report.mismatches == [] and report.decisions_equal


def test_synthetic_firmware_matches_the_interpreter_and_the_runtime(
    synth: Built, synth_windows: np.ndarray, tmp_path: Path
) -> None:
    between = hostparity.separating_threshold(synth.harness, synth_windows, tmp_path)
    for threshold in (None, between):
        report = hostparity.check_vibration(
            synth.model_dir, synth.harness, synth_windows, tmp_path, threshold
        )
        assert_parity(report)
        assert report.windows == len(synth_windows) and report.scored < report.windows  # the dead sensor
    # the replay must exercise the decisions: every kind of transition happened, on both sides
    for kind in ("anomaly raised", "anomaly cleared", "sensor_fault raised", "sensor_fault cleared",
                 "rule raised", "drift raised"):  # fmt: skip
        assert report.events.get(kind, 0) >= 1, kind


@pytest.mark.needs("shared")
def test_cwru_firmware_matches_the_interpreter_and_the_runtime(shared: Path, tmp_path: Path) -> None:
    built = build(train_cwru(tmp_path, shared), tmp_path)
    windows = hostparity.cwru_windows(shared / "datasets/cwru/cwru_1797_DE_float32.npz", built.window)
    between = hostparity.separating_threshold(built.harness, windows, tmp_path)
    for threshold in (None, between):
        report = hostparity.check_vibration(built.model_dir, built.harness, windows, tmp_path, threshold)
        assert_parity(report)
        assert report.scored == report.windows == len(windows)
    assert report.events.get("anomaly raised", 0) >= 2 and report.events.get("anomaly cleared", 0) >= 1


def test_a_runtime_that_decides_differently_is_caught(
    synth: Built, synth_windows: np.ndarray, tmp_path: Path
) -> None:
    eager = DeviceConfig(device_id="other", decision=DebounceConfig(k=1, n=1, m=1, hysteresis=1.0))
    between = hostparity.separating_threshold(synth.harness, synth_windows, tmp_path)
    report = hostparity.check_vibration(
        synth.model_dir, synth.harness, synth_windows, tmp_path, between, config=eager
    )
    assert not report.decisions_equal and report.mismatches
    assert report.output_max_steps == 0  # the model still agrees: only the decisions differ


def test_an_event_that_differs_is_named() -> None:
    event = {"kind": "anomaly", "active": True, "severity": "warning", "window": 7, "reason": None,
             "message": "anomaly", "score": 2.5, "threshold": 1.5,
             "features": {"a": 1.5, "b": -1.0}}  # fmt: skip
    python = {**event, "message": "bearing outer race?", "features": {"a": 1.5, "b": -1.0, "c": 0.5}}
    assert hostparity.event_difference(event, python) is None  # fewer key features, no explanation
    assert "window" in str(hostparity.event_difference({**event, "window": 8}, python))
    assert "score" in str(hostparity.event_difference({**event, "score": 2.6}, python))
    assert "key features" in str(hostparity.event_difference({**event, "features": {"b": -1.0}}, python))
    fault = {**event, "kind": "sensor_fault", "message": "sensor input stuck"}
    assert "message" in str(hostparity.event_difference(fault, {**fault, "message": "sensor input gap"}))


def test_the_library_is_cached_and_keyed_by_its_sources_and_flags(synth: Built) -> None:
    ops = project_ops(synth.project)
    assert ops == ["FULLY_CONNECTED"]
    started = time.perf_counter()
    again = tflm_library(ops)
    assert again.cached and again.library.is_file() and time.perf_counter() - started < 2.0
    assert again.key == library_key(ops)
    assert library_key(ops, opt="-O1") != again.key
    assert library_key([*ops, "SOFTMAX"]) != again.key
    conv = kernel_sources(["CONV_2D", "RELU", "RELU6"])  # two ops of one file: once
    assert conv == sorted(set(conv)) and any(s.endswith("conv_common.cc") for s in conv)
    assert sum(s.endswith("/activations.cc") for s in conv) == 1
    with pytest.raises(HostBuildError, match="NOT_AN_OP"):
        tflm_library(["NOT_AN_OP"])


def test_the_harness_refuses_bad_input(synth: Built, tmp_path: Path) -> None:
    short = tmp_path / "short.f32"
    np.zeros(synth.window * 6 + 3, dtype=np.float32).tofile(short)  # not a whole window
    with pytest.raises(HostBuildError, match="not a positive multiple"):
        run_harness(synth.harness, ["windows", str(short)])
    with pytest.raises(HostBuildError, match="cannot open"):
        run_harness(synth.harness, ["windows", str(tmp_path / "missing.f32")])
    whole = tmp_path / "whole.f32"
    np.zeros((1, synth.window, 6), dtype=np.float32).tofile(whole)
    with pytest.raises(HostBuildError, match="bad threshold"):
        run_harness(synth.harness, ["windows", str(whole), "-1"])
    with pytest.raises(HostBuildError, match="usage"):
        run_harness(synth.harness, ["frobnicate"])
    info = run_harness(synth.harness, ["info"])[0]
    assert info["init"] == 0 and 0 < info["arena_used"] <= info["arena_bytes"]


def test_project_sources_are_the_portable_ones(synth: Built, tmp_path: Path) -> None:
    project = tmp_path / "copy"
    shutil.copytree(synth.project / "main", project / "main")
    names = {p.name for p in project_sources(project)}
    assert {"inference.cc", "model_data.cc", "features.c", "ef_core.c"} <= names
    assert "app_main.cc" not in names
    (project / "main/extra.c").write_text('#include "ef_core.h"\n#include <math.h>\nint extra;\n')
    (project / "main/driver.c").write_text('#include "ef_core.h"\n#include "driver/gpio.h"\n')
    names = {p.name for p in project_sources(project)}
    assert "extra.c" in names and "driver.c" not in names


def test_sources_get_esp_idfs_warning_flags(synth: Built, tmp_path: Path) -> None:
    tflm = tflm_library(project_ops(synth.project))
    bad = tmp_path / "bad.cc"
    bad.write_text("int f(int a) { if (a) return 1; }\nint main() { return f(1); }\n")
    with pytest.raises(HostBuildError, match=r"Werror=return-type"):  # -Werror=all, as ESP-IDF
        compile_harness(synth.project, [], bad, tmp_path / "bad", tflm=tflm)
    # ...but a #warning stays a warning under ESP-IDF's flags (-Wcpp is not in -Wall)
    warned = tmp_path / "warned.cc"
    warned.write_text('#warning "a stub"\nint main() { return 0; }\n')
    assert compile_harness(synth.project, [], warned, tmp_path / "warned", tflm=tflm).is_file()


@pytest.mark.needs("valgrind")
def test_feature_cost_is_measured_per_window(synth: Built, synth_windows: np.ndarray) -> None:
    cost = hostparity.feature_cost(synth.harness, synth_windows[:8], repeat=2)
    instructions = cost["instructions"]
    assert cost["windows"] == 8 and cost["features_ns"] > 0
    # a 128 x 6 window: more than one instruction per sample, less than a direct DFT's worst case
    assert 128 * 6 < instructions["ef_features_extract"] < 50_000_000
    assert instructions["ef_inference_run"] > 0 and instructions["ef_guard_check"] > 0


@pytest.mark.needs("valgrind")
def test_bench_firmware_reports_parity_and_cost(synth: Built, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEFLEET_BENCH_DIR", str(Path(__file__).resolve().parents[3] / "bench"))
    options = {"synthetic": str(synth.model_dir), "cold_build": "false", "no_cwru": "true",
               "no_camera": "true", "repeat": "1"}  # fmt: skip
    figures = run_benchmark("firmware", options)
    assert figures["parity_max_steps"] == 0 and figures["decisions_equal"] is True
    assert figures["camera_parity_max_steps"] is None  # --no-camera
    synthetic = figures["models"]["synthetic"]
    assert synthetic["parity"]["separating_threshold"]["events"]["anomaly cleared"] >= 1
    instructions = figures["feature_instructions_per_window"]["synthetic"]
    assert instructions == synthetic["cost_per_window"]["instructions"]["ef_features_extract"] > 0
