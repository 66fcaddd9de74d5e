from typer.testing import CliRunner

from edgefleet.cli.main import app


def test_demo_says_what_is_not_built_yet() -> None:
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code != 0
    assert "not built yet" in result.output
