"""The device-runtime benchmarks run end to end on small inputs and report the keys the issue names."""

import os
from pathlib import Path

import pytest

from edgefleet.cli.bench_runner import run_benchmark

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(autouse=True)
def _bench_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEFLEET_BENCH_DIR", str(BENCH_DIR))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "options", "keys"),
    [
        ("device-loop", {"windows": "2000", "batch": "256"}, {"windows_per_s", "invoke_us"}),
        ("bandwidth", {"hours": "0.1"}, {"reduction", "bytes_per_device_hour"}),
        (
            "field-shift",
            {"devices": "1", "windows": "300", "commission_windows": "200", "fault_windows": "20"},
            {"far_without_commissioning", "far_with_commissioning", "recall"},
        ),
    ],
)
def test_benchmark_runs(model_dir: Path, name: str, options: dict[str, str], keys: set[str]) -> None:
    if name == "device-loop" and not hasattr(os, "sched_setaffinity"):
        pytest.skip("needs sched_setaffinity (Linux)")
    result = run_benchmark(name, {**options, "model": str(model_dir)})
    assert keys <= set(result)
    for key in keys:
        assert isinstance(result[key], float | int) and result[key] >= 0
