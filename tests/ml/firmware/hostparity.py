"""Host parity of a generated vibration project: the firmware's own C/C++ against the Python side.

Shared by tests/ml/firmware/test_host_tflm.py and `edgefleet bench firmware`; imports no pytest.
The harness (edgefleet.ml.firmware.hostbuild) runs the project's inference.cc, features.c and
ef_core.c over raw windows; the Python side is the device runtime itself (edge.pipeline.DeviceCore
with the default DeviceConfig, which the firmware's defaults equal) and the tflite-micro
interpreter (ml.runtime.TflmModel).
"""

import dataclasses
import json
import math
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgefleet import dsp
from edgefleet.contracts import Channel, Event, decode, load_model_card
from edgefleet.edge.config import DeviceConfig
from edgefleet.edge.model import load_model_dir
from edgefleet.edge.pipeline import DeviceCore, EventDraft
from edgefleet.ml.firmware.hostbuild import HostBuildError, run_harness
from edgefleet.ml.runtime import TflmModel
from edgefleet.ml.selftest import SELF_TEST_FILE, load_self_test

# ef_core.h's EF_REASON_* bits, in bit order
REASON_BITS = ("nonfinite", "out_of_range", "saturated", "stuck", "gap")
STATES = {0: "rejected", 1: "normal", 2: "alarm"}
# Scores and velocities in events: the C features (float FFT) differ from numpy's by ~2e-5 relative
SCORE_RTOL = 1e-4
FEATURE_ATOL = 2e-4  # the key features are rounded to 4 decimals on both sides
COST_FUNCTIONS = ("ef_guard_check", "ef_features_extract", "ef_rms_velocity_mm_s", "ef_inference_run")
MISMATCHES_KEPT = 10


@dataclass
class ParityReport:
    """What the harness did against the Python side, over one model's windows."""

    windows: int
    scored: int
    self_test_cases: int
    self_test_max_steps: int  # harness outputs vs self_test.json's expected outputs
    output_max_steps: int  # harness outputs vs the tflite-micro interpreter on the same int8 inputs
    input_max_steps: int  # harness int8 inputs vs Python's (dsp features, standardized, quantized)
    inputs_differing: int  # windows whose int8 input differs in any feature
    feature_max_rel_err: float  # C features vs dsp.extract, relative to max(|x|, 1e-3)
    score_max_rel_err: float
    decisions_equal: bool
    mismatches: list[str] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)  # "anomaly raised": 1, ...

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------ data
def synthetic_recording(seconds: float, seed: int = 5, dropouts_per_s: float = 0.05) -> np.ndarray:
    """A replayed synthetic recording (200 Hz, MPU6050 axes): normal, a bearing fault, normal again."""
    synth = dsp.VibrationSynth(dsp.MachineConfig(dropouts_per_s=dropouts_per_s), seed=seed)
    synth.schedule_fault(seconds * 0.35, "bearing_outer", 1.0)
    synth.schedule_fault(seconds * 0.6, "normal")
    return synth.read(int(seconds * 200)).samples


def synthetic_windows(window: int, hop: int, seconds: float = 120.0) -> np.ndarray:
    """Windows of the synthetic recording, with a dead sensor for 30 windows (a fault raised, cleared)."""
    windows = dsp.frame(synthetic_recording(seconds), window, hop).astype(np.float32)
    dead = slice(len(windows) // 4, len(windows) // 4 + 30)
    windows[dead] = windows[dead.start, 0]
    return windows


def cwru_windows(npz: Path, window: int, normal: int = 60, fault: int = 30) -> np.ndarray:
    """CWRU drive-end windows as a machine would see them: normal, an outer-race fault, normal again,
    then an inner-race fault (non-overlapping windows of each record, in time order)."""
    records = dsp.read_npz(npz)
    names = sorted(records)
    normal_name = next(n for n in names if n.endswith("Normal"))
    outer = next(n for n in names if "_OR" in n)
    inner = next(n for n in names if "_IR" in n)

    def frames(name: str, count: int, start: int = 0) -> np.ndarray:
        data = np.asarray(records[name], dtype=np.float32)
        if data.ndim == 1:
            data = data[:, None]
        return dsp.frame(data[(start * window) : (start + count) * window], window, window)

    parts = [frames(normal_name, normal), frames(outer, fault), frames(normal_name, normal, start=normal),
             frames(inner, fault)]  # fmt: skip
    return np.concatenate(parts).astype(np.float32)


# ------------------------------------------------------------------------------------------ harness
def _write(path: Path, array: np.ndarray) -> Path:
    np.ascontiguousarray(array).tofile(path)
    return path


def harness_windows(
    harness: Path,
    windows: np.ndarray,
    workdir: Path,
    threshold: float | None = None,
    package: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """`package`: the harness's --card/--model options (a model update's card and model)."""
    path = _write(workdir / "windows.f32", windows.astype(np.float32))
    args = ["windows", str(path), *([] if threshold is None else [repr(threshold)])]
    return run_harness(harness, [*package, *args])


def separating_threshold(
    harness: Path, windows: np.ndarray, workdir: Path, package: Sequence[str] = ()
) -> float:
    """A threshold between the usual and the largest scores (geometric mean of the median and the
    maximum), so that a replay with a fault in the middle raises the anomaly and clears it."""
    records = harness_windows(harness, windows, workdir, package=package)
    scores = [r["score"] for r in records if r["score"] is not None]
    return float(np.sqrt(np.median(scores) * np.max(scores)))


def harness_int8(harness: Path, inputs: np.ndarray, workdir: Path, package: Sequence[str] = ()) -> np.ndarray:
    path = _write(workdir / "inputs.i8", inputs.astype(np.int8))
    records = run_harness(harness, [*package, "int8", str(path)])
    return np.asarray([r["q_out"] for r in records], dtype=np.int8)


def _steps(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.max(np.abs(a.astype(np.int32) - b.astype(np.int32)))) if a.size else 0


# ------------------------------------------------------------------------------------------ events
def _python_event(e: EventDraft) -> dict[str, Any]:
    return {"kind": e.kind, "active": e.active, "severity": e.severity, "window": e.window,
            "reason": e.reason, "message": e.message, "score": e.score, "threshold": e.threshold,
            "features": dict(e.features)}  # fmt: skip


def _harness_event(raw: dict[str, Any]) -> dict[str, Any]:
    event = decode(Channel.EVENT, json.dumps(raw))  # the contract's decoder: the message is valid
    assert isinstance(event, Event)
    return {"kind": event.kind, "active": event.active, "severity": event.severity, "window": event.window,
            "reason": event.reason, "message": event.message, "score": event.score,
            "threshold": event.threshold, "features": dict(event.features)}  # fmt: skip


def _close(a: float | None, b: float | None, rtol: float) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rtol, abs_tol=1e-12)


def event_difference(c: dict[str, Any], py: dict[str, Any]) -> str | None:
    """Why a harness event and a Python event differ, or None. The firmware sends fewer key features
    (EF_KEY_FEATURES) and no explanation, so its anomaly message is plain."""
    for name in ("kind", "active", "severity", "window", "reason"):
        if c[name] != py[name]:
            return f"{name} {c[name]!r} != {py[name]!r}"
    if c["kind"] in ("sensor_fault", "rule") and c["message"] != py["message"]:
        return f"message {c['message']!r} != {py['message']!r}"
    for name in ("score", "threshold"):
        if not _close(c[name], py[name], SCORE_RTOL):
            return f"{name} {c[name]} != {py[name]}"
    expected = list(py["features"].items())[: len(c["features"])]
    if list(c["features"]) != [k for k, _ in expected]:
        return f"key features {list(c['features'])} != {[k for k, _ in expected]}"
    if any(abs(c["features"][k] - v) > FEATURE_ATOL for k, v in expected):
        return f"key feature values {c['features']} != {dict(expected)}"
    return None


# ------------------------------------------------------------------------------------------ parity
def check_vibration(
    model_dir: Path,
    harness: Path,
    windows: np.ndarray,
    workdir: Path,
    threshold: float | None = None,
    config: DeviceConfig | None = None,
    package: Sequence[str] = (),
) -> ParityReport:
    """Run `windows` (n, W, A) through the harness and through the Python runtime and compare;
    `threshold` replaces the card's on both sides (None: the card's). `config`: the Python
    runtime's (default: DeviceConfig's defaults, which the generated firmware's equal). `model_dir`
    is what the Python runtime loads; `package` the harness's --card/--model options when that is
    not the model the harness was generated from (a model update on the chip)."""
    card = load_model_card(model_dir / "model_card.json")
    fs, sensor = card.feature_spec, card.sensor
    qin = card.input.quantization
    assert fs is not None and sensor is not None and qin is not None
    records = harness_windows(harness, windows, workdir, threshold, package)
    if len(records) != len(windows):
        raise HostBuildError(f"the harness answered {len(records)} of {len(windows)} windows")
    interpreter = TflmModel((model_dir / "model.tflite").read_bytes())

    cases = load_self_test(model_dir / SELF_TEST_FILE)
    st_in = np.asarray([c.input_int8 for c in cases], dtype=np.int8)
    st_out = harness_int8(harness, st_in, workdir, package)
    st_expected = np.asarray([c.expected_int8 for c in cases], dtype=np.int8)

    scored = [r for r in records if "q_in" in r]
    q_in = np.asarray([r["q_in"] for r in scored], dtype=np.int8).reshape(-1, len(fs.names))
    q_out = np.asarray([r["q_out"] for r in scored], dtype=np.int8).reshape(-1, len(fs.names))
    all_in, all_out = np.concatenate([st_in, q_in]), np.concatenate([st_out, q_out])
    reference = np.asarray(interpreter.run(all_in), dtype=np.int8)

    spec = dsp.FeatureConfig.from_spec(fs.sample_rate_hz, sensor.axes, fs.sets, fs.bands_hz)
    index = [r["window"] for r in scored]
    x = dsp.extract(windows[index].astype(np.float64), spec) if index else np.zeros((0, len(fs.names)))
    py_in = dsp.quantize(dsp.standardize(x, fs.mean, fs.std), qin.scale, qin.zero_point)
    c_features = np.asarray([r["features"] for r in scored], dtype=np.float64).reshape(x.shape)
    rel = np.abs(c_features - x) / np.maximum(np.abs(x), 1e-3)

    core = DeviceCore(config or DeviceConfig(device_id="host-harness"), load_model_dir(model_dir))
    if threshold is not None:
        core.baseline = dataclasses.replace(core.baseline, threshold=threshold)
    python = core.process(windows)
    mismatches: list[str] = []
    events: dict[str, int] = {}
    score_err = 0.0
    for r, py in zip(records, python, strict=True):
        i = r["window"]
        state = STATES[r["state"]]
        reasons = [name for bit, name in enumerate(REASON_BITS) if r["reasons"] >> bit & 1]
        if state != py.state or reasons != py.rejected:
            mismatches.append(f"window {i}: state {state} {reasons}, python {py.state} {py.rejected}")
        if py.score is not None and r["score"] is not None:
            score_err = max(score_err, abs(r["score"] - py.score) / max(abs(py.score), 1e-12))
        c_events = [_harness_event(e) for e in r["events"]]
        py_events = [_python_event(e) for e in py.events]
        if len(c_events) != len(py_events):
            kinds = ([e["kind"] for e in c_events], [e["kind"] for e in py_events])
            mismatches.append(f"window {i}: events {kinds[0]}, python {kinds[1]}")
            continue
        for c, p in zip(c_events, py_events, strict=True):
            if why := event_difference(c, p):
                mismatches.append(f"window {i}: {c['kind']} event: {why}")
            name = f"{c['kind']} {'raised' if c['active'] else 'cleared'}"
            events[name] = events.get(name, 0) + 1
    return ParityReport(
        windows=len(records),
        scored=len(scored),
        self_test_cases=len(cases),
        self_test_max_steps=_steps(st_out, st_expected),
        output_max_steps=_steps(all_out, reference),
        input_max_steps=_steps(q_in, py_in),
        inputs_differing=int(np.any(q_in != py_in, axis=1).sum()) if len(q_in) else 0,
        feature_max_rel_err=float(rel.max()) if rel.size else 0.0,
        score_max_rel_err=score_err,
        decisions_equal=not mismatches,
        mismatches=mismatches[:MISMATCHES_KEPT],
        events=dict(sorted(events.items())),
    )


# ------------------------------------------------------------------------------------------ cost
def _callgrind_inclusive(out_file: Path) -> dict[str, int]:
    """Inclusive instruction counts per function of a callgrind output file."""
    annotate = shutil.which("callgrind_annotate")
    if annotate is None:
        raise HostBuildError("callgrind_annotate is not installed (valgrind)")
    done = subprocess.run([annotate, "--inclusive=yes", "--threshold=100", str(out_file)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise HostBuildError(f"callgrind_annotate failed: {done.stderr[-2000:]}")
    counts: dict[str, int] = {}
    for match in re.finditer(r"^\s*([\d,]+)\s+\([\s\d.]+%\)\s+\S*?:?(\w+)\s", done.stdout, re.MULTILINE):
        counts.setdefault(match.group(2), int(match.group(1).replace(",", "")))
    return counts


def feature_cost(harness: Path, windows: np.ndarray, *, repeat: int = 20) -> dict[str, Any]:
    """Per-window cost of each firmware stage on this host: wall ns (`repeat` passes) and, when
    valgrind is installed, instructions counted by callgrind (repeatable, unlike time)."""
    with tempfile.TemporaryDirectory(prefix="ef-cost-") as tmp:
        path = _write(Path(tmp) / "windows.f32", windows.astype(np.float32))
        wall = run_harness(harness, ["cost", str(path), str(repeat)])[0]
        result: dict[str, Any] = {
            "windows": len(windows),
            **{k: v for k, v in wall.items() if k.endswith("_ns")},
        }
        if shutil.which("valgrind") is None:
            result["instructions"] = None
            return result
        out = Path(tmp) / "callgrind.out"
        run_harness(harness, ["cost", str(path), "1"], timeout=900,
                    wrapper=("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"))  # fmt: skip
        counts = _callgrind_inclusive(out)
        result["instructions"] = {
            name: round(counts[name] / len(windows)) if name in counts else None for name in COST_FUNCTIONS
        }
        return result
