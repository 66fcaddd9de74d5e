"""The firmware's ISO 10816-style rule (`ef_rms_velocity_mm_s` in ef_rule.c, on the features' FFT)
against the Python runtime's (`edge.decision.rms_velocity_mm_s`): the same velocities within
VELOCITY_RTOL and the same zones, on the float FFT, on the double direct DFT
(-DEF_FEATURES_DIRECT_DFT; also the path of a window that is not a power of two) and on the ESP-IDF
branch (esp-dsp's calls, answered by the documented stand-in of tests/dsp/test_codegen.py)."""

import ctypes
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edgefleet import dsp
from edgefleet.contracts import load_model_card
from edgefleet.edge.decision import IsoRuleConfig, rms_velocity_mm_s, severity_zone
from edgefleet.ml.firmware import generate_project
from edgefleet.ml.firmware.options import FirmwareOptions, RuleOptions
from tests.dsp.test_codegen import ESP_DSP_STAND_IN_C, ESP_DSP_STAND_IN_H
from tests.ml.firmware.cbind import VELOCITY_RTOL, Core, compile_core, needs_cc
from tests.ml.firmware.hostparity import synthetic_recording

pytestmark = needs_cc
DIRECT = "-DEF_FEATURES_DIRECT_DFT"
NARROW_BAND = (2.0, 50.0)  # below the default 10 Hz and short of the Nyquist bin (100 Hz)


@dataclass
class Generated:
    main: Path  # the project's main/
    window: int
    axes: int
    n_features: int
    sample_rate_hz: float


def _generate(model: Path, out: Path, band: tuple[float, float] | None = None) -> Generated:
    options = None if band is None else FirmwareOptions(rule=RuleOptions(band_hz=band))
    generate_project(model, "esp32s3", out, options)
    card = load_model_card(model / "model_card.json")
    fs, sensor = card.feature_spec, card.sensor
    assert fs is not None and sensor is not None
    assert sensor.units[:3] == ["g", "g", "g"], "the rule needs the three accelerometer axes"
    return Generated(out / "main", fs.window, len(sensor.axes), len(fs.names), fs.sample_rate_hz)


@pytest.fixture(scope="module")
def project(synth_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Generated:
    return _generate(synth_model, tmp_path_factory.mktemp("fw-velocity") / "fw")


def crafted(window: int, sample_rate_hz: float) -> np.ndarray:
    """Windows that hit the edges: a tone at the Nyquist frequency on every axis (the third rule axis
    rides alone in its FFT), a tone on the band's first bin over 1 g of gravity, a dead sensor."""
    t = np.arange(window) / sample_rate_hz
    nyquist = np.tile((0.3 * (-1.0) ** np.arange(window))[:, None], (1, 6))
    low = np.zeros((window, 6))
    low[:, 0] = 0.05 * np.sin(2 * np.pi * 7 * sample_rate_hz / window * t)  # bin 7: 10.9 Hz
    low[:, 2] = 1.0 + 0.02 * np.sin(2 * np.pi * 30.0 * t)
    dead = np.full((window, 6), 0.25)
    return np.stack([nyquist, low, dead]).astype(np.float32)


@pytest.fixture(scope="module")
def windows(project: Generated) -> np.ndarray:
    """A replay (normal, a bearing fault, normal again) and the crafted windows."""
    replay = dsp.frame(synthetic_recording(60.0, dropouts_per_s=0.0), project.window, project.window // 2)
    return np.concatenate([replay.astype(np.float32), crafted(project.window, project.sample_rate_hz)])


def assert_matches_python(
    core: Core, windows: np.ndarray, rule: IsoRuleConfig, sample_rate_hz: float
) -> None:
    expected = rms_velocity_mm_s(windows.astype(np.float64), sample_rate_hz, rule)
    got = np.array([core.velocity(w) for w in windows])
    # atol: velocities near 0 (a dead sensor, a band that holds only leakage) are float32 rounding
    np.testing.assert_allclose(got, expected, rtol=VELOCITY_RTOL, atol=1e-5)
    zones = [severity_zone(v, rule.zone_limits_mm_s) for v in got]
    assert zones == [severity_zone(v, rule.zone_limits_mm_s) for v in expected]


@pytest.mark.parametrize("defines", [(), (DIRECT,)], ids=["float-fft", "double-direct-dft"])
def test_velocity_and_zones_match_the_python_rule(
    project: Generated, windows: np.ndarray, tmp_path: Path, defines: tuple[str, ...]
) -> None:
    core = Core(compile_core(project.main, tmp_path, defines=defines), project.window, project.axes,
                project.n_features)  # fmt: skip
    rule = IsoRuleConfig()
    assert_matches_python(core, windows, rule, project.sample_rate_hz)
    velocities = rms_velocity_mm_s(windows.astype(np.float64), project.sample_rate_hz, rule)
    zones = {severity_zone(v, rule.zone_limits_mm_s) for v in velocities}
    assert zones >= {"A", "B", "C"}, f"the windows must cross zone limits, saw {sorted(zones)}"
    assert core.velocity(windows[-3]) > 1.0, "the Nyquist bin is inside the band and must count"


def test_another_band_selects_the_same_bins(synth_model: Path, windows: np.ndarray, tmp_path: Path) -> None:
    narrow = _generate(synth_model, tmp_path / "fw", NARROW_BAND)
    core = Core(compile_core(narrow.main, tmp_path), narrow.window, narrow.axes, narrow.n_features)
    assert_matches_python(core, windows, IsoRuleConfig(band_hz=NARROW_BAND), narrow.sample_rate_hz)
    assert core.velocity(windows[-3]) < 1e-3, "a band short of the Nyquist bin sees only Hann's leakage"


def test_on_esp_idf_the_rule_runs_esp_dsps_fft(
    project: Generated, windows: np.ndarray, tmp_path: Path
) -> None:
    main = shutil.copytree(project.main, tmp_path / "main")
    (main / "dsps_fft2r.h").write_text(ESP_DSP_STAND_IN_H)  # features.c includes it with quotes
    (main / "stand_in.c").write_text(ESP_DSP_STAND_IN_C)
    lib = compile_core(main, tmp_path, ("stand_in.c",), "libefesp.so", ("-DESP_PLATFORM",))
    core = Core(lib, project.window, project.axes, project.n_features)
    some = np.concatenate([windows[:-3:8], windows[-3:]])  # the crafted ones: the Nyquist tone
    assert_matches_python(core, some, IsoRuleConfig(), project.sample_rate_hz)
    calls = {name: ctypes.c_int.in_dll(core.lib, f"stand_in_{name}_calls").value for name in ("init", "fft")}
    assert calls == {"init": 1, "fft": 2 * len(some)}  # three rule axes: two complex FFTs per window
