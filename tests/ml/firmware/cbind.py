"""Compile the generated portable core (ef_core.c, ef_rule.c, features.c) with the host C compiler; ctypes
bindings."""

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.support.services import in_ci

CC = shutil.which("cc") or shutil.which("gcc")
# Skips without a compiler, except under CI, where the compile step then fails.
needs_cc = pytest.mark.skipif(CC is None and not in_ci(), reason="no C compiler (cc/gcc) on PATH")
N_REASONS = 5
REASON_NAMES = ("nonfinite", "out_of_range", "saturated", "stuck", "gap")
c_float_p = ctypes.POINTER(ctypes.c_float)


class Header(ctypes.Structure):
    _fields_ = [
        ("device_id", ctypes.c_char_p),
        ("seq", ctypes.c_uint64),
        ("ts", ctypes.c_char_p),
        ("clock_synced", ctypes.c_int),
    ]


class EventT(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_char_p),
        ("active", ctypes.c_int),
        ("severity", ctypes.c_char_p),
        ("has_score", ctypes.c_int),
        ("score", ctypes.c_double),
        ("threshold", ctypes.c_double),
        ("window", ctypes.c_int64),
        ("n_features", ctypes.c_int),
        ("feature_names", ctypes.POINTER(ctypes.c_char_p)),
        ("feature_values", c_float_p),
        ("reason", ctypes.c_char_p),
        ("message", ctypes.c_char_p),
    ]


class TelemetryT(ctypes.Structure):
    _fields_ = [
        ("mode", ctypes.c_char_p),
        ("uptime_s", ctypes.c_double),
        ("interval_s", ctypes.c_double),
        ("windows", ctypes.c_uint64),
        ("has_scores", ctypes.c_int),
        ("anomaly_rate", ctypes.c_double),
        ("score_p50", ctypes.c_double),
        ("score_p95", ctypes.c_double),
        ("score_max", ctypes.c_double),
        ("inference_us", ctypes.c_double),
        ("drift", ctypes.c_double),
        ("arena_bytes", ctypes.c_uint64),
        ("rejected", ctypes.c_uint64 * N_REASONS),
        ("outbox_depth", ctypes.c_uint64),
        ("outbox_dropped", ctypes.c_uint64),
    ]


class Debouncer(ctypes.Structure):
    _fields_ = [
        ("k", ctypes.c_int),
        ("n", ctypes.c_int),
        ("m", ctypes.c_int),
        ("hysteresis", ctypes.c_double),
        ("active", ctypes.c_int),
        ("recent", ctypes.c_ubyte * 64),  # EF_DEBOUNCE_MAX_N
        ("head", ctypes.c_int),
        ("count", ctypes.c_int),
        ("normal_run", ctypes.c_int),
    ]


class Step(ctypes.Structure):
    _fields_ = [
        ("state", ctypes.c_int),
        ("anomaly", ctypes.c_int),
        ("faults", ctypes.c_int * N_REASONS),
        ("rule", ctypes.c_int),
        ("rule_zone", ctypes.c_int),
        ("drift", ctypes.c_int),
        ("drift_value", ctypes.c_double),
    ]


def decider_type(n_features: int) -> type[ctypes.Structure]:
    """`ef_decider_t` for a project with `n_features` features (the drift state's size)."""
    drift = type(
        "Drift",
        (ctypes.Structure,),
        {
            "_fields_": [
                ("mean_z", ctypes.c_double * n_features),
                ("count", ctypes.c_uint64),
                ("active", ctypes.c_int),
            ]
        },
    )
    return type(
        "Decider",
        (ctypes.Structure,),
        {
            "_fields_": [
                ("anomaly", Debouncer),
                ("faults", Debouncer * N_REASONS),
                ("rule", Debouncer),
                ("drift", drift),
                ("threshold", ctypes.c_double),
            ]
        },
    )


# ef_rms_velocity_mm_s (float FFT) against edge.decision.rms_velocity_mm_s (a float32 projection),
# relative; seen: 1.2e-6 on CWRU windows, 3.8e-7 on synthetic ones (docs/firmware.md)
VELOCITY_RTOL = 1e-5
# The commissioning sources: the collector, fit and report, and the statistics they use
COMMISSION_SOURCES = ("ef_commission.c", "ef_threshold.c")


def compile_core(
    main_dir: Path,
    out: Path,
    extra: tuple[str, ...] = (),
    name: str = "libefcore.so",
    defines: tuple[str, ...] = (),
) -> Path:
    """Build a shared library from the project's own generated C files (strict warnings); `extra`:
    more of the project's C files, e.g. `COMMISSION_SOURCES`; `defines`: e.g. `-DEF_FEATURES_DIRECT_DFT`."""
    return compile_library(main_dir, out, ("ef_core.c", "ef_rule.c", "features.c", *extra), name, defines)


def compile_library(
    main_dir: Path,
    out: Path,
    files: tuple[str, ...],
    name: str,
    defines: tuple[str, ...] = (),
    extra_sources: tuple[Path, ...] = (),
    libs: tuple[str, ...] = (),
) -> Path:
    """A shared library of these C files of the project (C99, strict warnings as errors);
    `extra_sources`: host-side C that includes the project's headers; `libs`: linker arguments."""
    assert CC is not None, "no C compiler (cc/gcc) on PATH"
    lib = out / name
    sources = [str(main_dir / f) for f in files] + [str(s) for s in extra_sources]
    result = subprocess.run(
        [CC, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-shared", "-fPIC",
         *defines, "-iquote", str(main_dir), "-o", str(lib), *sources, *libs, "-lm"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return lib


class Core:
    """The compiled core of one generated project."""

    def __init__(self, lib_path: Path, window: int, axes: int, n_features: int) -> None:
        self.lib = ctypes.CDLL(str(lib_path))
        self.window, self.axes, self.n = window, axes, n_features
        lib = self.lib
        lib.ef_guard_check.restype = ctypes.c_uint
        lib.ef_score.restype = ctypes.c_float
        lib.ef_reason_name.restype = ctypes.c_char_p
        lib.ef_debouncer_update.argtypes = [ctypes.POINTER(Debouncer), ctypes.c_double, ctypes.c_double]
        lib.ef_debouncer_init.argtypes = [ctypes.POINTER(Debouncer), ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                          ctypes.c_double]  # fmt: skip
        self.decider_type = decider_type(n_features)
        lib.ef_decider_step.argtypes = [
            ctypes.POINTER(self.decider_type),
            ctypes.c_uint,
            ctypes.c_double,
            ctypes.c_double,
            c_float_p,
            ctypes.POINTER(Step),
        ]
        lib.ef_rms_velocity_mm_s.restype = ctypes.c_double
        lib.ef_rms_velocity_mm_s.argtypes = [c_float_p]
        lib.ef_severity_zone.argtypes = [ctypes.c_double]
        for name in ("ef_format_status", "ef_format_event", "ef_format_telemetry"):
            getattr(lib, name).restype = ctypes.c_int

    def _window(self, w: np.ndarray) -> np.ndarray:
        samples = np.ascontiguousarray(w, dtype=np.float32)
        assert samples.shape == (self.window, self.axes)
        return samples

    def features(self, w: np.ndarray) -> tuple[int, np.ndarray]:
        out = np.zeros(self.n, dtype=np.float32)
        rc = self.lib.ef_features_extract(
            self._window(w).ctypes.data_as(c_float_p), out.ctypes.data_as(c_float_p)
        )
        return int(rc), out

    def guard(self, w: np.ndarray) -> int:
        return int(self.lib.ef_guard_check(self._window(w).ctypes.data_as(c_float_p)))

    def standardize(self, features: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(features, dtype=np.float32)
        z = np.zeros(self.n, dtype=np.float32)
        self.lib.ef_standardize(x.ctypes.data_as(c_float_p), z.ctypes.data_as(c_float_p))
        return z

    def quantize(self, z: np.ndarray) -> np.ndarray:
        zz = np.ascontiguousarray(z, dtype=np.float32)
        q = np.zeros(self.n, dtype=np.int8)
        self.lib.ef_quantize_input(
            zz.ctypes.data_as(c_float_p), q.ctypes.data_as(ctypes.POINTER(ctypes.c_int8))
        )
        return q

    def score(self, z: np.ndarray, q_out: np.ndarray) -> float:
        zz = np.ascontiguousarray(z, dtype=np.float32)
        qo = np.ascontiguousarray(q_out, dtype=np.int8)
        return float(
            self.lib.ef_score(zz.ctypes.data_as(c_float_p), qo.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)))
        )

    def velocity(self, w: np.ndarray) -> float:
        return float(self.lib.ef_rms_velocity_mm_s(self._window(w).ctypes.data_as(c_float_p)))

    def decider(self) -> ctypes.Structure:
        dec = self.decider_type()
        self.lib.ef_decider_init(ctypes.byref(dec))
        return dec

    def step(
        self, dec: ctypes.Structure, reasons: int, velocity: float, score: float, z: np.ndarray | None
    ) -> Step:
        out = Step()
        zz = None if z is None else np.ascontiguousarray(z, dtype=np.float32)
        self.lib.ef_decider_step(
            ctypes.byref(dec), reasons, velocity, score, None if zz is None else zz.ctypes.data_as(c_float_p),
            ctypes.byref(out),
        )  # fmt: skip
        return out

    def format(self, name: str, header: Header, *args: object, cap: int = 2048) -> tuple[int, str]:
        buf = ctypes.create_string_buffer(cap)
        passed = [ctypes.byref(a) if isinstance(a, ctypes.Structure) else a for a in args]
        n = getattr(self.lib, f"ef_format_{name}")(buf, ctypes.c_size_t(cap), ctypes.byref(header), *passed)
        return int(n), buf.value.decode()


def reason_bits(reasons: list[str]) -> int:
    return sum(1 << REASON_NAMES.index(r) for r in reasons if r in REASON_NAMES)


STRICT_C_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic")


def build_model_independent(
    files: tuple[str, ...],
    out: Path,
    name: str,
    extra_sources: tuple[Path, ...] = (),
    libs: tuple[str, ...] = (),
) -> Path:
    """Render the project's model-independent files (`main/ef_outbox.c`, ...: the headers they include
    come along) into `out/main` and build a shared library from them (strict warnings).
    `extra_sources`: host-side C (e.g. the platform hooks of a test); `libs`: linker arguments."""
    from edgefleet.ml.firmware import FirmwareError
    from edgefleet.ml.firmware.project import PROJECT_FILES, render_model_independent

    assert CC is not None
    main = out / "main"
    main.mkdir(parents=True, exist_ok=True)
    for path in PROJECT_FILES:
        if (path.startswith("main/ef_") and path.endswith(".h")) or path in files:
            try:
                (out / path).write_bytes(render_model_independent(path))
            except FirmwareError:  # a header that needs the model: not part of these builds
                if path in files:
                    raise
    lib = out / name
    sources = [str(out / f) for f in files] + [str(s) for s in extra_sources]
    result = subprocess.run(
        [CC, *STRICT_C_FLAGS, "-shared", "-fPIC", "-I", str(main), "-o", str(lib), *sources, *libs, "-lm"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return lib
