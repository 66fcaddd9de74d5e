"""Generated firmware built on the host: int8 parity with tflite-micro, same decisions, build time, cost."""

import logging
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the parity code is shared with the tests (tests/ml/firmware/hostparity.py)
    sys.path.insert(0, str(REPO))

from tests.ml.firmware import hostparity  # noqa: E402

from edgefleet.contracts import load_model_card  # noqa: E402
from edgefleet.ml.firmware import generate_project  # noqa: E402
from edgefleet.ml.firmware.hostbuild import (  # noqa: E402
    build_vibration_harness,
    host_build_problem,
    project_ops,
    tflm_library,
)

PACKAGES = ("tflite-micro", "tensorflow")
log = logging.getLogger(__name__)


def _shared(options: Mapping[str, str]) -> Path:
    return Path(options.get("shared", os.environ.get("EDGEFLEET_SHARED", str(REPO.parent / "shared"))))


def _model(name: str, options: Mapping[str, str], train: Callable[[Path], Path]) -> Path:
    """--<name> DIR, else a model trained as the tests do, cached under --cache."""
    if options.get(name):
        return Path(options[name])
    cache = Path(options.get("cache", ".edgefleet/bench-models")) / f"firmware-{name}"
    found = next(cache.rglob("model_card.json"), None) if cache.is_dir() else None
    if found is not None:
        return found.parent
    log.warning("training the %s test model into %s (no --%s given)", name, cache, name)
    from _edge_models import stdout_to_stderr  # TensorFlow's converter prints to stdout

    with stdout_to_stderr():
        return train(cache)


def project_ops_of(model_dir: Path, out: Path) -> list[str]:
    """The ops the generated project registers (what the host library must hold)."""
    generate_project(model_dir, "esp32s3", out)
    return project_ops(out)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _build_times(ops: list[str], work: Path) -> dict[str, Any]:
    """A cold build of the TFLM library into an empty cache (wall and compiler CPU seconds: the
    wall time depends on the machine's load), then the same call again."""
    cpu = _children_cpu_s()
    cold = tflm_library(ops, work / "cold-cache")
    cpu = _children_cpu_s() - cpu
    started = time.perf_counter()
    again = tflm_library(ops, work / "cold-cache")
    assert again.cached
    return {"ops": ops, "cold": round(cold.build_s, 2), "cold_cpu": round(cpu, 2),
            "cached": round(time.perf_counter() - started, 4)}  # fmt: skip


def _vibration(
    model_dir: Path, windows_of: Callable[[int, int], Any], work: Path, repeat: int
) -> dict[str, Any]:
    fs = load_model_card(model_dir / "model_card.json").feature_spec
    assert fs is not None
    generate_project(model_dir, "esp32s3", work / "fw")
    started = time.perf_counter()
    harness = build_vibration_harness(work / "fw", work / "harness")
    harness_s = time.perf_counter() - started
    windows = windows_of(fs.window, fs.hop)
    between = hostparity.separating_threshold(harness, windows, work)
    reports = {
        "card_threshold": hostparity.check_vibration(model_dir, harness, windows, work).as_dict(),
        "separating_threshold": hostparity.check_vibration(
            model_dir, harness, windows, work, between
        ).as_dict(),
    }
    cost = hostparity.feature_cost(harness, windows[: min(len(windows), 40)], repeat=repeat)
    return {
        "window": fs.window,
        "axes": windows.shape[2],
        "features": len(fs.names),
        "harness_build_s": round(harness_s, 2),
        "parity_max_steps": max(
            max(r["self_test_max_steps"], r["output_max_steps"]) for r in reports.values()
        ),
        "decisions_equal": all(r["decisions_equal"] for r in reports.values()),
        "separating_threshold": between,
        "parity": reports,
        "cost_per_window": cost,
    }


def _camera(work: Path, shared: Path) -> dict[str, Any]:
    """The camera node's parity (tests/ml/firmware/camparity.py, written with the camera firmware)."""
    if not (shared / "models/person_detect/person_detect.tflite").is_file():
        return {"camera_status": f"skipped: no person model under {shared}"}
    from tests.ml.firmware.camparity import camera_parity

    return camera_parity(shared, work, progress=log.info)


def run(options: Mapping[str, str]) -> dict[str, Any]:
    """Options: --synthetic DIR, --cwru DIR (model directories; default: trained as the tests do and
    cached under --cache, default .edgefleet/bench-models), --shared (EDGEFLEET_SHARED or ../shared),
    --repeat N (wall-time passes, default 20), --cold-build false (skip the timed cold build of
    TFLM into an empty cache), --no-cwru, --no-camera."""
    if problem := host_build_problem():
        raise RuntimeError(f"cannot build on the host: {problem}")
    from tests.ml.firmware.conftest import train_cwru, train_tiny

    shared = _shared(options)
    repeat = int(options.get("repeat", "20"))
    cwru_npz = shared / "datasets/cwru/cwru_1797_DE_float32.npz"
    models: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="ef-bench-fw-") as tmp:
        work = Path(tmp)
        synthetic = _model("synthetic", options, train_tiny)
        ops = project_ops_of(synthetic, work / "ops")
        cold = options.get("cold_build", "true").lower() not in ("0", "false", "no")
        build_s = _build_times(ops, work) if cold else {"ops": ops, "cold": None, "cached": None}
        (work / "synthetic").mkdir()
        models["synthetic"] = _vibration(synthetic, hostparity.synthetic_windows, work / "synthetic", repeat)
        if options.get("no_cwru") is None and cwru_npz.is_file():
            cwru = _model("cwru", options, lambda root: train_cwru(root, shared))
            (work / "cwru").mkdir()
            models["cwru"] = _vibration(
                cwru, lambda window, hop: hostparity.cwru_windows(cwru_npz, window), work / "cwru", repeat
            )
        if options.get("no_camera"):
            camera: dict[str, Any] = {"camera_status": "skipped (--no-camera)"}
        else:
            (work / "camera").mkdir()
            camera = _camera(work / "camera", shared)
    return {
        "parity_max_steps": max(m["parity_max_steps"] for m in models.values()),
        "decisions_equal": all(m["decisions_equal"] for m in models.values()),
        "camera_parity_max_steps": camera.get("camera_parity_max_steps"),
        "camera_events_equal": camera.get("camera_events_equal"),
        "host_build_s": build_s,
        "feature_instructions_per_window": {
            name: (m["cost_per_window"]["instructions"] or {}).get("ef_features_extract")
            for name, m in models.items()
        },
        "models": models,
        "camera": camera,
        "not_verified": "ESP-NN optimized kernels (the chip's), Xtensa code generation, timing on the chip",
    }
