"""The generated C features match `extract` (compiled with the host C compiler, called with ctypes)."""

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgefleet.dsp import FeatureConfig, FeatureError, VibrationSynth, extract, feature_names, read_npz
from edgefleet.dsp.codegen import FLOAT_ATOL, FLOAT_RTOL, feature_tables, generate

CC = shutil.which("cc") or shutil.which("gcc")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler (cc/gcc) on PATH")
RTOL = 1e-5  # -DEF_FEATURES_DIRECT_DFT: double accumulation
ATOL = 1e-7  # float32 resolution near 1: a feature that is ~0 cannot be compared relatively
DIRECT = "-DEF_FEATURES_DIRECT_DFT"

SYNTH = FeatureConfig(
    200.0,
    ("ax", "ay", "az", "gx", "gy", "gz"),
    ("stats", "spectral"),
    ((2.0, 10.0), (10.0, 20.0), (20.0, 35.0), (35.0, 50.0), (50.0, 70.0), (70.0, 100.0)),
)


class CFeatures:
    def __init__(
        self, config: FeatureConfig, window: int, directory: Path, *defines: str, extra: tuple[Path, ...] = ()
    ) -> None:
        for name, text in generate(config, window).items():
            (directory / name).write_text(text, encoding="utf-8")
        lib = directory / "libfeatures.so"
        assert CC is not None
        subprocess.run(
            [CC, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-shared", "-fPIC",
             *defines, "-o", str(lib), str(directory / "features.c"), *map(str, extra), "-lm"],
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


def assert_close(c: np.ndarray, py: np.ndarray, rtol: float = FLOAT_RTOL, atol: float = FLOAT_ATOL) -> None:
    err = np.abs(c.astype(np.float64) - py.astype(np.float64))
    bound = rtol * np.abs(py.astype(np.float64)) + atol
    worst = int(np.argmax(err / bound))
    assert np.all(err <= bound), f"feature {worst}: C {c[worst]!r} vs numpy {py[worst]!r}"


@needs_cc
@pytest.mark.parametrize(
    ("defines", "rtol", "atol"),
    [((), FLOAT_RTOL, FLOAT_ATOL), ((DIRECT,), RTOL, ATOL)],
    ids=["float-fft", "double-direct-dft"],
)
def test_c_features_match_numpy_on_a_synthetic_stream(
    tmp_path: Path, defines: tuple[str, ...], rtol: float, atol: float
) -> None:
    c = CFeatures(SYNTH, 128, tmp_path, *defines)
    synth = VibrationSynth(seed=3)
    synth.schedule_fault(4.0, "bearing_outer", 1.0)
    synth.schedule_fault(8.0, "imbalance", 0.7)
    samples = synth.read(128 * 96).samples  # 61 s: normal, bearing fault, imbalance
    windows = samples.reshape(96, 128, 6)
    expected = extract(windows, SYNTH)
    for w, py in zip(windows, expected, strict=True):
        rc, out = c.extract(w)
        assert rc == 0
        assert_close(out, py, rtol, atol)


@needs_cc
@pytest.mark.parametrize(
    ("window", "axes", "sets", "bands"),
    [
        (100, 2, ("stats",), ()),
        (100, 2, ("spectral", "stats"), ((0.0, 50.0), (50.0, 500.0), (495.0, 500.0))),  # not 2^k: DFT
        (64, 3, ("spectral",), ((0.0, 20.0), (20.0, 300.0), (300.0, 500.0))),  # odd axis pairs with zeros
        (256, 1, ("stats", "spectral"), ((0.0, 3.9), (3.9, 500.0))),  # DC alone; up to Nyquist
    ],
)
def test_windows_axes_and_sets(
    tmp_path: Path, window: int, axes: int, sets: tuple[str, ...], bands: tuple[tuple[float, float], ...]
) -> None:
    cfg = FeatureConfig(1000.0, tuple("xyz"[:axes]), sets, bands)
    w = np.random.default_rng(window).normal(0.1, 0.5, (window, axes))
    w[:, 0] += np.sin(np.arange(window) * 0.7)  # a tone, so bands differ by decades
    rc, out = CFeatures(cfg, window, tmp_path).extract(w)
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
@pytest.mark.needs("shared")
@pytest.mark.parametrize(
    ("defines", "rtol", "atol"),
    [((), FLOAT_RTOL, FLOAT_ATOL), ((DIRECT,), RTOL, ATOL)],
    ids=["float-fft", "double-direct-dft"],
)
def test_c_features_match_numpy_on_cwru(
    tmp_path: Path, shared: Path, defines: tuple[str, ...], rtol: float, atol: float
) -> None:
    recording = read_npz(shared / "datasets/cwru/cwru_1797_DE_float32.npz", keys=["1797_Normal"])[
        "1797_Normal"
    ]
    bands = ((0.0, 150.0), (150.0, 400.0), (400.0, 800.0), (800.0, 1500.0), (1500.0, 2500.0),
             (2500.0, 3500.0), (3500.0, 4500.0), (4500.0, 6000.0))  # fmt: skip
    cfg = FeatureConfig(12000.0, ("de",), ("stats", "spectral"), bands)
    c = CFeatures(cfg, 1024, tmp_path, *defines)
    windows = recording[: 1024 * 12].reshape(12, 1024, 1).astype(np.float32)
    for w, py in zip(windows, extract(windows, cfg), strict=True):
        rc, out = c.extract(w)
        assert rc == 0
        assert_close(out, py, rtol, atol)


# A stand-in for espressif/esp-dsp's dsps_fft2r.h with the documented results of the four calls
# features.c makes on ESP-IDF, computed independently (a double DFT, then esp-dsp's output orders).
ESP_DSP_STAND_IN_H = """\
#ifndef DSPS_FFT2R_STAND_IN_H
#define DSPS_FFT2R_STAND_IN_H
typedef int esp_err_t;
#define ESP_OK 0
extern int dsps_fft_w_table_size;
extern int stand_in_init_calls, stand_in_fft_calls, stand_in_fail_init;
esp_err_t dsps_fft2r_init_fc32(float *fft_table_buff, int table_size);
esp_err_t dsps_fft2r_fc32(float *data, int n);
esp_err_t dsps_bit_rev2r_fc32(float *data, int n);
esp_err_t dsps_cplx2reC_fc32(float *data, int n);
#endif
"""
ESP_DSP_STAND_IN_C = """\
#include <math.h>
#include <string.h>
#include "dsps_fft2r.h"
int dsps_fft_w_table_size = 0, stand_in_init_calls = 0, stand_in_fft_calls = 0, stand_in_fail_init = 0;
static int rev(int k, int n)
{
    int r = 0, b;
    for (b = 1; b < n; b <<= 1, k >>= 1) {
        r = (r << 1) | (k & 1);
    }
    return r;
}
esp_err_t dsps_fft2r_init_fc32(float *table, int size)
{
    (void)table;
    ++stand_in_init_calls;
    if (stand_in_fail_init) {
        return 1;
    }
    dsps_fft_w_table_size = size;
    return ESP_OK;
}
/* the complex DFT (e^-i), left in bit-reversed order as esp-dsp's radix-2 FFT leaves it */
esp_err_t dsps_fft2r_fc32(float *data, int n)
{
    static double out[2 * 4096];
    int k, j;
    ++stand_in_fft_calls;
    for (k = 0; k < n; ++k) {
        double re = 0, im = 0;
        for (j = 0; j < n; ++j) {
            const double a = -2.0 * 3.14159265358979323846 * (double)((long)k * j % n) / n;
            re += data[2 * j] * cos(a) - data[2 * j + 1] * sin(a);
            im += data[2 * j] * sin(a) + data[2 * j + 1] * cos(a);
        }
        out[2 * rev(k, n)] = re;
        out[2 * rev(k, n) + 1] = im;
    }
    for (k = 0; k < 2 * n; ++k) {
        data[k] = (float)out[k];
    }
    return ESP_OK;
}
esp_err_t dsps_bit_rev2r_fc32(float *data, int n)
{
    int k;
    for (k = 0; k < n; ++k) {
        const int r = rev(k, n);
        if (k < r) {
            const float re = data[2 * k], im = data[2 * k + 1];
            data[2 * k] = data[2 * r];
            data[2 * k + 1] = data[2 * r + 1];
            data[2 * r] = re;
            data[2 * r + 1] = im;
        }
    }
    return ESP_OK;
}
/* z = x1 + i x2: slots 1..N/2-1 get 2 X1[k], slots N/2 + k get 2 X2[k]; slot 0 X1[0], slot N/2 X2[0] */
esp_err_t dsps_cplx2reC_fc32(float *data, int n)
{
    static float z[2 * 4096];
    int k;
    memcpy(z, data, sizeof(float) * 2 * (size_t)n);
    for (k = 1; k < n / 2; ++k) {
        const float a = z[2 * k], b = z[2 * k + 1], c = z[2 * (n - k)], d = z[2 * (n - k) + 1];
        data[2 * k] = a + c;
        data[2 * k + 1] = b - d;
        data[2 * (n / 2 + k)] = b + d;
        data[2 * (n / 2 + k) + 1] = c - a;
    }
    data[0] = z[0];
    data[1] = 0;
    data[n] = z[1];
    data[n + 1] = 0;
    return ESP_OK;
}
"""


@needs_cc
@pytest.mark.parametrize("init_fails", [False, True], ids=["esp-dsp", "init-fails-portable-fft"])
def test_esp_idf_build_calls_esp_dsp_as_documented(tmp_path: Path, init_fails: bool) -> None:
    """The ESP_PLATFORM branch (esp-dsp's init, FFT, bit reversal and split) against a stand-in with
    esp-dsp's documented results; if esp-dsp cannot set up its tables, the portable FFT takes over."""
    (tmp_path / "dsps_fft2r.h").write_text(ESP_DSP_STAND_IN_H)
    (tmp_path / "stand_in.c").write_text(ESP_DSP_STAND_IN_C)
    c = CFeatures(SYNTH, 128, tmp_path, "-DESP_PLATFORM", extra=(tmp_path / "stand_in.c",))
    ctypes.c_int.in_dll(c.lib, "stand_in_fail_init").value = int(init_fails)
    windows = VibrationSynth(seed=8).read(128 * 6).samples.reshape(6, 128, 6)
    for w, py in zip(windows, extract(windows, SYNTH), strict=True):
        rc, out = c.extract(w)
        assert rc == 0
        assert_close(out, py)
    assert ctypes.c_int.in_dll(c.lib, "stand_in_init_calls").value == 1  # once, not per window
    ffts = ctypes.c_int.in_dll(c.lib, "stand_in_fft_calls").value
    assert ffts == (0 if init_fails else len(windows) * 3)  # 6 axes: 3 complex FFTs per window


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


@needs_cc
@pytest.mark.parametrize("sets", [("stats", "spectral"), ("stats",)])
def test_the_exported_fft_gives_numpys_spectra(tmp_path: Path, sets: tuple[str, ...]) -> None:
    """ef_features_fft_two_real (the ISO rule's FFT in ef_rule.c), there whatever the feature sets."""
    n = 256
    cfg = FeatureConfig(1000.0, ("x", "y"), sets, ((0.0, 100.0),) if "spectral" in sets else ())
    c = CFeatures(cfg, n, tmp_path)
    signals = np.random.default_rng(1).normal(0.0, 1.0, (2, n)).astype(np.float32)
    data = np.ascontiguousarray(signals.T.reshape(-1))  # re: the first signal, im: the second
    nyquist = np.zeros(2, dtype=np.float32)
    c_float_p = ctypes.POINTER(ctypes.c_float)
    c.lib.ef_features_fft_two_real(data.ctypes.data_as(c_float_p), nyquist.ctypes.data_as(c_float_p))
    slots = data[0::2] + 1j * data[1::2]
    atol = 1e-5 * np.sqrt(n)  # float32 rounding of spectra whose bins are ~sqrt(n)
    for signal, half, nyq in zip(signals, (slots[: n // 2], slots[n // 2 :]), nyquist, strict=True):
        expected = np.fft.rfft(signal.astype(np.float64))
        got = np.concatenate([half[:1], half[1:] / 2])  # slot 0 holds X[0], slots 1.. hold 2 X[k]
        np.testing.assert_allclose(got, expected[: n // 2], rtol=0, atol=atol)
        assert nyq == pytest.approx(expected[n // 2].real, abs=atol)  # the bin the split drops
    assert "ef_features_fft_two_real" not in generate(cfg, 100)["features.h"], "no radix-2 FFT for 100"
