"""The generated C features match `extract` (compiled with the host C compiler, called with ctypes)."""

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgefleet.dsp import FeatureConfig, FeatureError, VibrationSynth, extract, feature_names, read_npz
from edgefleet.dsp.codegen import feature_tables, generate

CC = shutil.which("cc") or shutil.which("gcc")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler (cc/gcc) on PATH")
RTOL = 1e-5
ATOL = 1e-7  # float32 resolution near 1: a feature that is ~0 cannot be compared relatively

SYNTH = FeatureConfig(
    200.0,
    ("ax", "ay", "az", "gx", "gy", "gz"),
    ("stats", "spectral"),
    ((2.0, 10.0), (10.0, 20.0), (20.0, 35.0), (35.0, 50.0), (50.0, 70.0), (70.0, 100.0)),
)


class CFeatures:
    def __init__(self, config: FeatureConfig, window: int, directory: Path, *defines: str) -> None:
        for name, text in generate(config, window).items():
            (directory / name).write_text(text, encoding="utf-8")
        lib = directory / "libfeatures.so"
        assert CC is not None
        subprocess.run(
            [CC, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-shared", "-fPIC",
             *defines, "-o", str(lib), str(directory / "features.c"), "-lm"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        self.lib = ctypes.CDLL(str(lib))
        self.config, self.window = config, window
        self.n = len(feature_names(config))

    def extract(self, w: np.ndarray) -> tuple[int, np.ndarray]:
        samples = np.ascontiguousarray(w, dtype=np.float32)
        assert samples.shape == (self.window, len(self.config.axes))
        out = np.full(self.n, -999.0, dtype=np.float32)
        rc = self.lib.ef_features_extract(
            samples.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
        )
        return int(rc), out


def assert_close(c: np.ndarray, py: np.ndarray) -> None:
    err = np.abs(c.astype(np.float64) - py.astype(np.float64))
    bound = RTOL * np.abs(py.astype(np.float64)) + ATOL
    worst = int(np.argmax(err / bound))
    assert np.all(err <= bound), f"feature {worst}: C {c[worst]!r} vs numpy {py[worst]!r}"


@needs_cc
def test_c_features_match_numpy_on_a_synthetic_stream(tmp_path: Path) -> None:
    c = CFeatures(SYNTH, 128, tmp_path)
    synth = VibrationSynth(seed=3)
    synth.schedule_fault(4.0, "bearing_outer", 1.0)
    synth.schedule_fault(8.0, "imbalance", 0.7)
    samples = synth.read(128 * 96).samples  # 61 s: normal, bearing fault, imbalance
    windows = samples.reshape(96, 128, 6)
    expected = extract(windows, SYNTH)
    for w, py in zip(windows, expected, strict=True):
        rc, out = c.extract(w)
        assert rc == 0
        assert_close(out, py)


@needs_cc
def test_set_order_and_single_set_configs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(0.1, 0.5, (100, 2))
    for i, cfg in enumerate([
        FeatureConfig(1000.0, ("x", "y"), ("stats",)),
        FeatureConfig(1000.0, ("x", "y"), ("spectral", "stats"), ((0.0, 50.0), (50.0, 500.0), (495.0, 500.0))),  # noqa: E501
    ]):  # fmt: skip
        d = tmp_path / str(i)
        d.mkdir()
        rc, out = CFeatures(cfg, 100, d).extract(w)
        assert rc == 0
        assert_close(out, extract(w, cfg))


@needs_cc
def test_nonfinite_samples_are_refused_and_output_is_untouched(tmp_path: Path) -> None:
    c = CFeatures(SYNTH, 128, tmp_path)
    w = np.zeros((128, 6), dtype=np.float32)
    w[5, 2] = np.nan
    rc, out = c.extract(w)
    assert rc == -1 and np.all(out == -999.0)
    with pytest.raises(FeatureError):
        extract(w, SYNTH)


@needs_cc
def test_single_precision_build_is_close(tmp_path: Path) -> None:
    c = CFeatures(SYNTH, 128, tmp_path, "-DEF_FEATURES_SINGLE_PRECISION")
    windows = VibrationSynth(seed=5).read(128 * 8).samples.reshape(8, 128, 6)
    for w, py in zip(windows, extract(windows, SYNTH), strict=True):
        _, out = c.extract(w)
        np.testing.assert_allclose(out, py, rtol=1e-3, atol=1e-4)


@needs_cc
@pytest.mark.needs("shared")
def test_c_features_match_numpy_on_cwru(tmp_path: Path, shared: Path) -> None:
    recording = read_npz(shared / "datasets/cwru/cwru_1797_DE_float32.npz", keys=["1797_Normal"])[
        "1797_Normal"
    ]
    bands = ((0.0, 150.0), (150.0, 400.0), (400.0, 800.0), (800.0, 1500.0), (1500.0, 2500.0),
             (2500.0, 3500.0), (3500.0, 4500.0), (4500.0, 6000.0))  # fmt: skip
    cfg = FeatureConfig(12000.0, ("de",), ("stats", "spectral"), bands)
    c = CFeatures(cfg, 1024, tmp_path)
    windows = recording[: 1024 * 12].reshape(12, 1024, 1).astype(np.float32)
    for w, py in zip(windows, extract(windows, cfg), strict=True):
        rc, out = c.extract(w)
        assert rc == 0
        assert_close(out, py)


def test_tables_select_the_same_bins_as_numpy() -> None:
    tables = feature_tables(SYNTH, 128)
    freqs = np.fft.rfftfreq(128, 1 / 200.0)
    for (lo, hi), (first, end) in zip(SYNTH.bands_hz, tables.band_bins, strict=True):
        assert list(range(first, end)) == np.flatnonzero((freqs >= lo) & (freqs < hi)).tolist()
    assert tables.hann == tuple(np.hanning(130)[1:-1].tolist())


def test_generation_is_deterministic_and_lists_the_names() -> None:
    first, second = generate(SYNTH, 128), generate(SYNTH, 128)
    assert first == second
    assert "#define EF_FEATURES_COUNT 72" in first["features.h"]
    assert all(f'"{name}"' in first["features.c"] for name in feature_names(SYNTH))
    assert "malloc" not in first["features.c"]


def test_bad_window_is_refused() -> None:
    with pytest.raises(FeatureError, match="window must be 2"):
        generate(SYNTH, 1)
