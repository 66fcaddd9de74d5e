from pathlib import Path

import pytest

from edgefleet.cli.bench_runner import BenchmarkError, list_benchmarks, parse_options, run_benchmark


def test_parse_options() -> None:
    assert parse_options(["--db", "sqlite://", "--quick", "--rate=5", "--broker-url", "mqtt://x"]) == {
        "db": "sqlite://",
        "quick": "true",
        "rate": "5",
        "broker_url": "mqtt://x",
    }
    with pytest.raises(BenchmarkError, match="unexpected"):
        parse_options(["positional"])


def test_benchmarks_are_discovered_from_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fast_one.py").write_text(
        '"""Adds numbers."""\ndef run(options):\n    return {"sum": 1 + 1}\n'
    )
    (tmp_path / "_helper.py").write_text("X = 1\n")
    (tmp_path / "broken.py").write_text('"""No run function."""\n')
    monkeypatch.setenv("EDGEFLEET_BENCH_DIR", str(tmp_path))
    assert set(list_benchmarks()) == {"fast-one", "broken"}
    assert list_benchmarks()["fast-one"].summary == "Adds numbers."
    assert run_benchmark("fast-one", {})["sum"] == 2
    with pytest.raises(BenchmarkError, match="no run"):
        run_benchmark("broken", {})
