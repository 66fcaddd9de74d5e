from pathlib import Path

import yaml
from typer.testing import CliRunner

from edgefleet.cli.main import app
from edgefleet.dsp import read_table_csv
from tests.ml.helpers import tiny_synthetic

ROOT = Path(__file__).resolve().parents[2]


def test_data_synth_writes_format_a(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_synthetic(tmp_path / "d.csv")))
    out = tmp_path / "other.csv"
    result = CliRunner().invoke(app, ["data", "synth", str(config), "--out", str(out), "--seed", "3"])
    assert result.exit_code == 0, result.output
    table = read_table_csv(out, ["ax", "ay", "az", "gx", "gy", "gz"])
    assert table.samples.shape == (205 * 200, 6)
    assert list(dict.fromkeys(table.labels.tolist())) == [
        "normal",
        "normal_fast",
        "imbalance",
        "bearing_outer",
        "looseness",
    ]
    assert not (tmp_path / "d.csv").exists()


def test_data_synth_needs_a_synth_section() -> None:
    result = CliRunner().invoke(app, ["data", "synth", str(ROOT / "configs" / "cwru.yaml")])
    assert result.exit_code == 2
    assert "data.synth" in result.output


def test_model_train_reports_bad_configs_and_missing_data(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_id: x\nunknown: 1\n")
    result = CliRunner().invoke(app, ["model", "train", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "bad.yaml" in result.output and "unknown" in result.output
    missing = tmp_path / "missing.yaml"
    data = tiny_synthetic(tmp_path / "nothing.csv")
    del data["data"]["synth"]
    missing.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["model", "train", str(missing), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "no such file" in result.output
    assert not (tmp_path / "o").exists()
