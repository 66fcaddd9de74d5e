"""`bench field-real` on a subset of the real fan-speeds data: the JSON's shape and sane figures.

Not a timed test: it trains a small model (few epochs) into a temporary cache, runs two held-out
speeds with one commissioning length, and checks what the report says, not how fast.
"""

import importlib
import json
import math
from pathlib import Path
from types import ModuleType

import pytest

from edgefleet.cli.bench_runner import run_benchmark
from tests.support.services import in_ci, shared_dir

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
DATA = "datasets/fan-speeds/fan_speeds_float32.npz"
TOP_KEYS = {
    "far_window",
    "far_alarm",
    "recall",
    "recall_min",
    "auc",
    "baseline_kmeans",
    "per_speed",
    "targets",
    "meets_target",
    "assumptions",
    "definitions",
    "worst",
    "by_commission_windows",
    "model",
}


@pytest.fixture
def fan_speeds() -> Path:
    path = shared_dir() / DATA
    if not path.exists():
        problem = f"the fan-speeds data set is missing at {path} (set EDGEFLEET_SHARED)"
        if in_ci():
            pytest.fail(f"CI requires shared data: {problem}", pytrace=False)
        pytest.skip(f"needs shared: {problem}")
    return path


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEFLEET_BENCH_DIR", str(BENCH_DIR))
    monkeypatch.syspath_prepend(str(BENCH_DIR))


def _helper(name: str) -> ModuleType:
    return importlib.import_module(name)


def _fraction(value: object) -> bool:
    return isinstance(value, float | int) and 0.0 <= value <= 1.0


@pytest.mark.slow
@pytest.mark.usefixtures("bench")
def test_field_real_on_two_held_out_speeds(fan_speeds: Path, tmp_path: Path) -> None:
    options = {
        "data": str(fan_speeds),
        "speeds": "45,65",
        "commission": "50",
        "epochs": "40",
        "cache": str(tmp_path / "models"),
        "secondary": "false",
    }
    result = run_benchmark("field-real", options)
    json.dumps(result)  # one JSON object on stdout: everything must serialize
    assert set(result) >= TOP_KEYS
    assert result["model"]["origin"].startswith("trained now")
    assert list((tmp_path / "models" / "fan-speeds").glob("w3-*/model_card.json"))

    a = result["assumptions"]
    assert a["normal_configuration"] == 3 and a["fault_configurations"] == [1, 2]
    assert a["training_speeds"] == list(range(20, 101, 10)) and a["held_out_speeds"] == [45, 65]
    assert (a["window"], a["hop"], a["windows_per_recording"]) == (64, 16, 184)
    assert a["sample_rate_hz"] > 0 and "assumed" in a["sample_rate_note"]
    assert result["targets"] == {"far_alarm": 0.01, "recall": 0.95}

    rows = result["per_speed"]
    assert [(r["speed"], r["commission_windows"]) for r in rows] == [(45, 50), (65, 50)]
    for row in rows:
        # 184 windows: 50 commission the device, 3 overlap them, the rest are measured
        assert row["measured_windows"] == 184 - 50 - 3
        assert _fraction(row["far_window"]) and _fraction(row["far_alarm"])
        assert row["threshold"] is not None and math.isfinite(row["threshold"]) and row["threshold"] > 0
        assert row["commissioning"]["mode"] == "running"
    low, high = rows
    assert "recall" not in low  # below 50% the configurations vibrate alike: no recall measured
    assert set(high["recall_by_fault"]) == {"w1", "w2"}
    # at 65% the imbalances vibrate ~10x more than the balanced fan: any working detector sees them
    assert high["recall"] >= 0.9 and high["auc"] >= 0.95
    assert high["kmeans_far_window"] <= high["far_window"]  # K-means judged at equal false-alarm rate

    assert result["far_window"] == max(r["far_window"] for r in rows)
    assert result["far_alarm"] == max(r["far_alarm"] for r in rows)
    assert result["recall"] == pytest.approx(sum(high["recall_by_fault"].values()) / 2, abs=1e-4)
    assert result["recall_min"] == min(high["recall_by_fault"].values())
    km = result["baseline_kmeans"]
    assert {"far_window", "recall", "recall_min", "auc"} <= set(km)
    assert _fraction(km["recall"]) and _fraction(km["auc"])
    assert result["meets_target"] == (result["far_alarm"] <= 0.01 and result["recall"] >= 0.95)
    assert set(result["by_commission_windows"]) == {"50"}

    # a second run finds the cached model
    again = run_benchmark("field-real", {**options, "speeds": "55", "commission": "30"})
    assert again["model"]["origin"].startswith("cached")
    assert [r["speed"] for r in again["per_speed"]] == [55]


@pytest.mark.usefixtures("bench")
def test_kmeans_threshold_matches_the_false_alarm_rate() -> None:
    import numpy as np

    fe = _helper("_field_eval")
    scores = np.arange(100, dtype=np.float64)
    for far in (0.0, 0.01, 0.05, 0.5):
        threshold = fe.threshold_at_far(scores, far)
        assert np.mean(scores > threshold) == pytest.approx(far)
    # windows the device did not score (-inf) are never flagged
    assert fe.threshold_at_far(np.array([-np.inf, 1.0, 2.0]), 0.9) == -np.inf

    rng = np.random.default_rng(0)
    commission, normal = rng.normal(size=(50, 4)), rng.normal(size=(200, 4))
    faults = {"f": rng.normal(3.0, 1.0, size=(40, 4))}
    result = fe.kmeans_at_equal_far(commission, normal, faults, 0.02, clusters=4)
    assert result.far_window <= 0.02
    assert result.recall_by_fault["f"] > 0.5 and result.auc_by_fault["f"] > 0.9


@pytest.mark.usefixtures("bench")
def test_speeds_option() -> None:
    fan = _helper("_fan_speeds")
    assert fan.parse_speeds("20-40,100") == (20, 25, 30, 35, 40, 100)
    for bad in ("22", "10-15", "fast", ""):
        with pytest.raises(fan.FanSpeedsError):
            fan.parse_speeds(bad)
