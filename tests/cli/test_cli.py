import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from edgefleet import __version__
from edgefleet.cli.main import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_help_lists_every_command_group() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in ("data", "model", "device", "sim", "server", "demo", "bench", "contracts"):
        assert group in result.output


def test_contracts_schema_prints_the_whole_contract() -> None:
    result = runner.invoke(app, ["contracts", "schema"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document["messages"]) == {
        "status",
        "event",
        "telemetry",
        "ota/state",
        "sample",
        "cmd",
        "ota/cmd",
        "ack",
    }
    assert "model_card" in document


def test_contracts_schema_one_message_and_to_file(tmp_path: Path) -> None:
    out = tmp_path / "event.json"
    result = runner.invoke(app, ["contracts", "schema", "--message", "event", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["title"] == "Event"
    bad = runner.invoke(app, ["contracts", "schema", "--message", "nope"])
    assert bad.exit_code == 2
    assert "unknown message 'nope'" in bad.output


def test_bench_lists_and_refuses_unknown() -> None:
    listed = runner.invoke(app, ["bench", "--list"])
    assert listed.exit_code == 0
    assert "contracts-codec" in listed.output
    unknown = runner.invoke(app, ["bench", "no-such-bench"])
    assert unknown.exit_code == 2
    assert "no benchmark 'no-such-bench'" in unknown.output


def test_bench_prints_one_json_object_with_figures_machine_and_versions() -> None:
    result = runner.invoke(app, ["bench", "contracts-codec", "--messages", "200"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["benchmark"] == "contracts-codec"
    assert report["decode_per_s"] > 0 and report["baseline_json_decode_per_s"] > 0
    assert report["options"] == {"messages": "200"}
    assert report["machine"]["cores"] >= 1
    assert "pydantic" in report["versions"]


def test_installed_entry_point_runs() -> None:
    exe = Path(sys.executable).with_name("edgefleet")
    result = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0
    assert result.stdout.strip() == f"edgefleet {__version__}"
