import numpy as np
import pytest

from edgefleet.dsp import FeatureConfig, FeatureError, band_powers, extract, feature_names, n_features

FS = 1000.0


def sine(freq: float, amp: float, n: int = 1000, offset: float = 0.0) -> np.ndarray:
    t = np.arange(n) / FS
    return offset + amp * np.sin(2 * np.pi * freq * t + 0.3)


def test_stats_of_a_sine_with_offset() -> None:
    cfg = FeatureConfig(FS, ("x",), ("stats",))
    f = extract(sine(50, 2.0, offset=1.0)[:, None], cfg)
    assert dict(zip(feature_names(cfg), f.tolist(), strict=True)) == pytest.approx(
        {"x_mean": 1.0, "x_std": 2.0 / np.sqrt(2), "x_ptp": 4.0}, rel=1e-3
    )


def test_spectral_features_of_a_pure_sine() -> None:
    bands = ((0.0, 40.0), (40.0, 60.0), (100.0, 400.0))
    cfg = FeatureConfig(FS, ("x",), ("spectral",), bands)
    values = dict(
        zip(feature_names(cfg), extract(sine(50, 2.0, offset=0.5)[:, None], cfg).tolist(), strict=True)
    )
    assert values["x_rms"] == pytest.approx(2.0 / np.sqrt(2), rel=1e-3)  # AC RMS: the offset does not count
    assert values["x_crest"] == pytest.approx(np.sqrt(2), rel=1e-3)
    assert values["x_kurtosis"] == pytest.approx(1.5, rel=1e-2)
    assert values["x_band40-60"] == pytest.approx(np.log10(2.0**2 / 2), abs=0.02)  # A^2/2 in the band
    assert values["x_band0-40"] < values["x_band40-60"] - 2  # leakage is small
    assert values["x_band100-400"] < values["x_band40-60"] - 4


def test_band_power_follows_the_sine_between_bands() -> None:
    x = np.stack([sine(30, 1.0), sine(200, 1.0)])
    powers = band_powers(x, FS, [(20.0, 40.0), (150.0, 250.0)])
    assert powers[0] == pytest.approx([0.5, 0.0], abs=0.01)
    assert powers[1] == pytest.approx([0.0, 0.5], abs=0.01)


def test_gaussian_noise_kurtosis_is_about_three() -> None:
    cfg = FeatureConfig(FS, ("x",), ("spectral",), ((0.0, 500.0),))
    noise = np.random.default_rng(0).normal(size=(1, 20000, 1))
    assert extract(noise, cfg)[0, 2] == pytest.approx(3.0, abs=0.15)


def test_batch_layout_and_names_are_axis_major() -> None:
    cfg = FeatureConfig(FS, ("a", "b"), ("stats", "spectral"), ((1.0, 100.0),))
    names = feature_names(cfg)
    assert names[:6] == ["a_mean", "a_std", "a_ptp", "b_mean", "b_std", "b_ptp"]
    assert names[6:10] == ["a_rms", "a_crest", "a_kurtosis", "a_band1-100"]
    assert n_features(cfg) == len(names) == 14
    windows = np.stack([np.stack([sine(10, k + 1), sine(20, 3.0)], axis=1) for k in range(4)])
    batch = extract(windows, cfg)
    assert batch.shape == (4, 14) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[2], extract(windows[2], cfg))  # same code path for one window
    assert batch[:, 3] == pytest.approx([0.0] * 4, abs=1e-6)  # b_mean
    assert batch[:, 1] == pytest.approx([(k + 1) / np.sqrt(2) for k in range(4)], rel=1e-3)


@pytest.mark.parametrize(
    ("windows", "message"),
    [
        (np.full((2, 64, 1), np.nan), "NaN"),
        (np.zeros((2, 64, 3)), "3 axes"),
        (np.zeros((2, 1, 1)), "at least 2 samples"),
        (np.zeros(64), "batch, window, axes"),
    ],
)
def test_bad_windows_are_refused(windows: np.ndarray, message: str) -> None:
    with pytest.raises(FeatureError, match=message):
        extract(windows, FeatureConfig(FS, ("x",)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sets": ("spectral",)}, "needs bands_hz"),
        ({"sets": ("fft",)}, "subset"),
        ({"sets": ("stats",), "bands_hz": ((10.0, 600.0),)}, "Nyquist|<= 500"),
        ({"sets": ("stats", "stats")}, "duplicate"),
    ],
)
def test_bad_feature_configs_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(FeatureError, match=message):
        FeatureConfig(FS, ("x",), **kwargs)  # type: ignore[arg-type]
