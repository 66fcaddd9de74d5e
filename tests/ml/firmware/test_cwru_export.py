"""Export of a model trained on the CWRU bearing data (shared data set), checked on the host."""

from pathlib import Path

import numpy as np
import pytest

from edgefleet import dsp
from edgefleet.contracts import load_model_card
from edgefleet.dsp.codegen import FLOAT_ATOL, FLOAT_RTOL
from edgefleet.edge.decision import IsoRuleConfig, rms_velocity_mm_s
from edgefleet.ml.firmware import PROJECT_FILES, generate_project
from tests.ml.firmware.cbind import VELOCITY_RTOL, Core, compile_core, needs_cc
from tests.ml.firmware.conftest import train_cwru

pytestmark = [pytest.mark.needs("shared"), pytest.mark.slow, needs_cc]


def test_cwru_model_exports_and_its_c_features_match(shared: Path, tmp_path: Path) -> None:
    model_dir = train_cwru(tmp_path, shared)
    card = load_model_card(model_dir / "model_card.json")
    fs, sensor = card.feature_spec, card.sensor
    assert fs is not None and sensor is not None
    out = tmp_path / "fw"
    assert len(generate_project(model_dir, "esp32s3", out)) == len(PROJECT_FILES)
    # 12 kHz single-axis data is not an MPU6050 stream: the project says where the sensor goes.
    # ... and builds under ESP-IDF's -Werror: weak stubs and a runtime log, no #warning.
    stub = (out / "main/ef_sensor.cc").read_text()
    assert "WEAK STUBS" in stub and "__attribute__((weak))" in stub
    sources = [p for p in (out / "main").iterdir() if p.suffix in (".c", ".cc", ".h")]
    assert not any("#warning" in p.read_text() for p in sources)
    assert "cannot deliver" in (out / "README.md").read_text()
    core = Core(compile_core(out / "main", tmp_path), fs.window, 1, len(fs.names))
    cfg = dsp.FeatureConfig.from_spec(fs.sample_rate_hz, sensor.axes, fs.sets, fs.bands_hz)
    records = dsp.read_npz(shared / "datasets/cwru/cwru_1797_DE_float32.npz")
    for name in ("1797_Normal", *[k for k in sorted(records) if k != "1797_Normal"][:3]):
        windows = dsp.frame(records[name][: fs.window * 6], fs.window, fs.window).astype(np.float32)
        velocities = rms_velocity_mm_s(windows.astype(np.float64), fs.sample_rate_hz, IsoRuleConfig())
        for w, py, v in zip(windows, dsp.extract(windows, cfg), velocities, strict=True):
            rc, c = core.features(w)
            assert rc == 0 and core.guard(w) == 0
            bound = FLOAT_RTOL * np.abs(py.astype(np.float64)) + FLOAT_ATOL  # float FFT features
            assert np.all(np.abs(c.astype(np.float64) - py) <= bound), name
            assert core.velocity(w) == pytest.approx(v, rel=VELOCITY_RTOL), name  # the rule's 1024-point FFT
