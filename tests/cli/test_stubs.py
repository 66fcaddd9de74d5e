"""Commands that later issues fill in say so clearly and exit non-zero, whatever they are given."""

import pytest
from typer.testing import CliRunner

from edgefleet.cli.main import app

runner = CliRunner()
# Each command is removed from this list by the issue that implements it.
STUBS: list[list[str]] = []


@pytest.mark.parametrize("args", STUBS, ids=lambda a: " ".join(a[:2]))
def test_stub_says_not_implemented(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 3
    assert "not implemented yet" in result.output
    assert "issue #" in result.output
