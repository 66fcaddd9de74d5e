"""One small end-to-end training run through the CLI; the tests check its artifacts."""

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from edgefleet.cli.main import app
from edgefleet.contracts import ModelCard, load_model_card
from edgefleet.dsp import (
    FeatureConfig,
    dequantize,
    extract,
    feature_names,
    quantize,
    reconstruction_score,
    standardize,
)
from edgefleet.ml.config import load_config
from edgefleet.ml.datasets import load_splits
from edgefleet.ml.runtime import LiteRtModel, TflmModel, _probe
from tests.ml.helpers import tiny_synthetic

pytestmark = pytest.mark.slow

REQUIRED = [
    "float.auc",
    "int8.auc",
    "int8.precision",
    "int8.recall",
    "int8.false_alarm_rate",
    "baseline_kmeans.auc",
    "threshold.value",
    "threshold.policy",
    "model.flash_bytes",
    "model.arena_bytes",
    "model.ops",
    "targets.esp32-s3.fits",
    "targets.esp32-s3.est_latency_ms",
    "targets.nrf52840.fits",
    "data.windows",
    "data.rejected",
]


class Trained:
    def __init__(self, root: Path) -> None:
        self.config_path = root / "tiny.yaml"
        self.out = root / "out"
        self.config_path.write_text(yaml.safe_dump(tiny_synthetic(root / "data" / "tiny.csv")))
        self.config, _ = load_config(self.config_path)
        runner = CliRunner()
        synth = runner.invoke(app, ["data", "synth", str(self.config_path)])
        assert synth.exit_code == 0, synth.output
        result = runner.invoke(app, ["model", "train", str(self.config_path), "--out", str(self.out)])
        assert result.exit_code == 0, result.output
        self.output = result.output
        self.report: dict[str, Any] = json.loads((self.out / "report.json").read_text())
        self.card: ModelCard = load_model_card(self.out / "model_card.json")
        self.model = (self.out / "model.tflite").read_bytes()
        self.splits = load_splits(self.config.data, root / "data" / "tiny.csv")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return Trained(tmp_path_factory.mktemp("train"))


def device_scores(card: ModelCard, model: bytes, windows: np.ndarray) -> np.ndarray:
    """What a device computes, from the model card and dsp only (plus the TFLM kernels)."""
    fs = card.feature_spec
    assert fs is not None and card.sensor is not None
    assert card.input.quantization is not None and card.output.quantization is not None
    cfg = FeatureConfig.from_spec(fs.sample_rate_hz, card.sensor.axes, fs.sets, fs.bands_hz)
    assert feature_names(cfg) == fs.names
    z = standardize(extract(windows, cfg), fs.mean, fs.std)
    qi = quantize(z, card.input.quantization.scale, card.input.quantization.zero_point)
    qo = TflmModel(model, arena_size=card.arena_bytes).run(qi)
    return reconstruction_score(
        z, dequantize(qo, card.output.quantization.scale, card.output.quantization.zero_point)
    )


def test_all_artifacts_are_written(trained: Trained) -> None:
    names = {p.name for p in trained.out.iterdir()}
    assert names == {
        "model.tflite",
        "model_float.tflite",
        "model_data.h",
        "model_data.cc",
        "model_card.json",
        "report.json",
        "report.html",
        "self_test.json",
    }
    assert "int8 AUC" in trained.output


def test_self_test_cases_are_written_from_the_exported_model(trained: Trained) -> None:
    from edgefleet.ml.selftest import load_self_test, make_self_test

    cases = load_self_test(trained.out / "self_test.json")
    assert len(cases) == 4 and cases == make_self_test(trained.out)


def test_report_has_every_required_figure(trained: Trained) -> None:
    for dotted in REQUIRED:
        node: Any = trained.report
        for part in dotted.split("."):
            assert part in node, dotted
            node = node[part]
    assert trained.report["model"]["ops"] == ["FULLY_CONNECTED"]
    assert (
        trained.report["data"]["rejected"] == trained.report["data"]["rejected_reasons"].get("dropout", 0) > 0
    )


def test_quality_on_the_small_synthetic_set(trained: Trained) -> None:
    r = trained.report
    assert r["int8"]["auc"] >= 0.99
    assert abs(r["int8"]["auc"] - r["float"]["auc"]) <= 0.01  # int8 vs float within 0.01
    assert r["int8"]["auc"] >= r["baseline_kmeans"]["auc"] - 1e-9
    assert r["int8"]["recall"] >= 0.95 and r["int8"]["false_alarm_rate"] <= 0.05
    assert r["model"]["flash_bytes"] <= 8 * 1024 and r["model"]["arena_bytes"] <= 4 * 1024


def test_model_card_describes_what_the_device_computes(trained: Trained) -> None:
    card = trained.card
    assert card.task == "anomaly_detection" and card.input.dtype == card.output.dtype == "int8"
    assert card.flash_bytes == len(trained.model) == trained.report["model"]["flash_bytes"]
    assert card.threshold is not None and card.threshold.value == trained.report["threshold"]["value"]
    assert card.sensor is not None and card.sensor.range_max == [2, 2, 2, 250, 250, 250]
    # Reproduce the report from the card alone: the false-alarm rate and the recall of the test windows,
    # and the calibration score statistics.
    normal = device_scores(card, trained.model, trained.splits.test_normal)
    anomaly = device_scores(card, trained.model, trained.splits.test_anomaly)
    assert np.mean(normal > card.threshold.value) == pytest.approx(trained.report["int8"]["false_alarm_rate"])
    assert np.mean(anomaly > card.threshold.value) == pytest.approx(trained.report["int8"]["recall"])
    calibration = device_scores(card, trained.model, trained.splits.calibration)
    assert card.score_stats is not None
    assert float(np.percentile(calibration, 99)) == pytest.approx(card.score_stats.p99, rel=1e-5)


def test_tflm_and_litert_agree_within_one_step(trained: Trained) -> None:
    card = trained.card
    assert card.input.quantization is not None
    z = np.random.default_rng(1).normal(scale=1.5, size=(300, card.input.shape[1])).astype(np.float32)
    q = quantize(z, card.input.quantization.scale, card.input.quantization.zero_point)
    tflm = TflmModel(trained.model).run(q).astype(int)
    lite = LiteRtModel(trained.model).run(q).astype(int)
    assert np.abs(tflm - lite).max() <= 1
    assert trained.report["parity"]["max_step_diff"] <= 1


def test_arena_is_measured_not_guessed(trained: Trained, tmp_path: Path) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(trained.model)
    arena = trained.card.arena_bytes
    assert _probe(path, arena)[0]
    assert not _probe(path, arena - 32)[0]


def test_c_array_holds_the_int8_model(trained: Trained) -> None:
    source = (trained.out / "model_data.cc").read_text()
    assert bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", source)) == trained.model
    assert f"g_model_data_len = {len(trained.model)};" in (trained.out / "model_data.h").read_text()


def test_html_report_has_histogram_threshold_and_roc(trained: Trained) -> None:
    html = (trained.out / "report.html").read_text()
    assert html.count("<svg") == 2 and "threshold" in html and "false-alarm rate" in html


def test_data_inspect_cli(trained: Trained) -> None:
    result = CliRunner().invoke(app, ["data", "inspect", str(trained.config_path)])
    assert result.exit_code == 0, result.output
    assert f"{trained.report['data']['windows']} windows" in result.output.replace("\n", " ")
