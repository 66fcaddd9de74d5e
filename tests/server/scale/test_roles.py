"""Roles: what each process runs, and the settings a split role refuses to start without."""

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from edgefleet.cli.main import app
from edgefleet.server import ServerSettings
from edgefleet.server.cluster.loops import LoopSpec, loops_for, register_loop
from tests.server.conftest import make_settings

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/x"


def test_the_loops_run_where_their_role_is() -> None:
    worker = {s.name for s in loops_for("worker", postgres=True)}
    assert worker == {"alarm auto-clear", "retention purge", "partitions ahead", "rollout engine pass"}
    assert {s.name for s in loops_for("all", postgres=True)} == worker  # the single process: everything
    assert loops_for("api", postgres=True) == [] and loops_for("ingest", postgres=True) == []
    assert "partitions ahead" not in {s.name for s in loops_for("all", postgres=False)}  # SQLite


def test_a_registered_loop_declares_its_role() -> None:
    spec = LoopSpec("probe sender", "worker", lambda s: 1.0, lambda loop: lambda: None)
    register_loop(spec)
    try:
        assert spec in loops_for("worker", postgres=False)
        assert spec not in loops_for("api", postgres=False)
    finally:
        from edgefleet.server.cluster import loops

        loops._REGISTERED.remove(spec)


@pytest.mark.parametrize(
    ("overrides", "missing"),
    [
        ({"db_url": "sqlite:///x.db", "broker": "mqtt://b:1883", "redis_url": "redis://r"}, "PostgreSQL"),
        ({"db_url": PG, "broker": "embedded", "redis_url": "redis://r"}, "external broker"),
        ({"db_url": PG, "broker": "mqtt://b:1883"}, "redis_url"),
        ({"db_url": PG, "broker": "mqtt://b:1883", "redis_url": "http://r"}, "redis://"),
    ],
)
def test_a_split_role_refuses_what_cannot_be_shared(
    tmp_path: Path, overrides: dict[str, str], missing: str
) -> None:
    with pytest.raises(ValidationError, match=missing):
        make_settings(tmp_path, role="ingest", **overrides)


def test_redis_serves_the_rate_limiter_unless_it_has_its_own() -> None:
    shared = ServerSettings(redis_url="redis://r:6379/0")
    assert shared.limiter_storage_url == "redis://r:6379/0"
    own = ServerSettings(redis_url="redis://r:6379/0", ratelimit_url="redis://l:6379/1")
    assert own.limiter_storage_url == "redis://l:6379/1"
    assert ServerSettings().limiter_storage_url is None  # the embedded default: memory


def test_the_cli_refuses_an_unknown_role() -> None:
    result = CliRunner().invoke(app, ["server", "--role", "boss", "--db", "sqlite:///x.db"])
    assert result.exit_code == 2
    assert "role" in result.output
