"""The real-data run: the CWRU config trains end to end and meets the issue's targets."""

from pathlib import Path

import pytest

from edgefleet.ml.config import load_config
from edgefleet.ml.pipeline import train

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.needs("shared")
def test_cwru_meets_the_targets(shared: Path, tmp_path: Path) -> None:
    config, sha = load_config(ROOT / "configs" / "cwru.yaml")
    # Pruning and distillation are reported by the benchmark; leave them out to keep CI lean.
    config = config.model_copy(
        update={
            "pruning": config.pruning.model_copy(update={"enabled": False}),
            "distillation": config.distillation.model_copy(update={"enabled": False}),
        }
    )
    report = train(
        config, tmp_path, variables={"shared": str(shared), "home": str(tmp_path)}, config_sha256=sha
    ).report
    assert report["int8"]["auc"] >= 0.99
    assert report["int8"]["false_alarm_rate"] <= 0.02
    assert report["int8"]["recall"] >= 0.95
    assert report["model"]["flash_bytes"] <= 8 * 1024
    assert report["model"]["arena_bytes"] <= 4 * 1024
    assert report["int8"]["auc"] >= report["baseline_kmeans"]["auc"]
    assert abs(report["int8"]["auc"] - report["float"]["auc"]) <= 0.01
    assert report["parity"]["max_step_diff"] <= 1
    assert report["data"]["per_label"]["1797_Normal"] > 0 and len(report["data"]["per_label"]) == 10


@pytest.mark.slow
def test_synthetic_config_meets_the_targets_on_its_own_data(tmp_path: Path) -> None:
    config, sha = load_config(ROOT / "configs" / "synthetic.yaml")
    report = train(
        config,
        tmp_path / "out",
        variables={"shared": str(tmp_path), "home": str(tmp_path)},
        config_sha256=sha,
    ).report
    assert (tmp_path / "data" / "synthetic-mpu6050-200hz.csv").is_file()  # generated on demand
    assert report["int8"]["auc"] >= 0.99
    assert report["int8"]["false_alarm_rate"] <= 0.02
    assert report["int8"]["recall"] >= 0.95
    assert report["model"]["flash_bytes"] <= 8 * 1024
    assert report["model"]["arena_bytes"] <= 4 * 1024
    assert report["int8"]["auc"] >= report["baseline_kmeans"]["auc"]
    assert report["data"]["rejected"] > 0  # dropouts are counted, not silently dropped
