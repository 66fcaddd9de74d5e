"""Weak and published secrets (issue 18, finding 4).

Before: `EDGEFLEET_SECRET_KEY='a'*32` and `EDGEFLEET_INGEST_PASSWORD=x` started a production server,
and `edgefleet server --demo --host 0.0.0.0` served the network with the public default secrets (a
token signed with them was accepted). Now both secrets need about 128 bits, `edgefleet server`
generates them on the first start (0600, beside the database) when none are given, and the defaults
never leave loopback.
"""

import json
import secrets
import stat
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from edgefleet.server import ServerSettings, create_app, security
from edgefleet.server.errors import AuthError, ConfigError
from edgefleet.server.settings import DEFAULT_INGEST_PASSWORD, DEFAULT_SECRET
from tests.server.conftest import INGEST_PASSWORD, SECRET, make_settings


def _settings(tmp_path: Path, **values: Any) -> ServerSettings:
    return ServerSettings.model_validate({"db_url": f"sqlite:///{tmp_path / 'x.db'}", **values})


@pytest.mark.parametrize(
    ("secret_key", "ingest_password"),
    [
        ("a" * 32, INGEST_PASSWORD),  # a repeated character
        ("0123456789abcdefghijklmnopqrstuvwxyz", INGEST_PASSWORD),  # a sequence
        ("correcthorsebatterystaplecorrecthorse", INGEST_PASSWORD),  # words
        (DEFAULT_SECRET, INGEST_PASSWORD),  # the published default
        (SECRET, "x"),
        (SECRET, DEFAULT_INGEST_PASSWORD),
        (SECRET, "ingest-password-2024"),
    ],
)
def test_guessable_secrets_do_not_start_a_server(
    tmp_path: Path, secret_key: str, ingest_password: str
) -> None:
    settings = _settings(tmp_path, broker="embedded", secret_key=secret_key, ingest_password=ingest_password)
    with pytest.raises(ConfigError, match=r"too weak|published default"):
        settings.require_safe()
    with pytest.raises(ConfigError), TestClient(create_app(settings)):
        pass


def test_random_secrets_start_a_server(tmp_path: Path) -> None:
    make_settings(tmp_path, broker="embedded").require_safe()
    for _ in range(20):
        token = secrets.token_urlsafe(32)  # what the docs suggest, at its shortest
        assert security.weak_secret(token) is None, token


def test_demo_defaults_stay_on_loopback(tmp_path: Path) -> None:
    _settings(tmp_path, demo=True).require_safe()  # the built-in defaults, loopback only: allowed
    _settings(tmp_path, demo=True).require_safe(http_host="127.0.0.1")
    with pytest.raises(ConfigError, match="demo mode off loopback"):
        _settings(tmp_path, demo=True).require_safe(http_host="0.0.0.0")
    with pytest.raises(ConfigError, match="demo mode off loopback"):
        _settings(tmp_path, demo=True, embedded_host="0.0.0.0").require_safe()


class _Served:
    """`uvicorn.run` replaced: what `edgefleet server` would have served, and how."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.app: FastAPI | None = None
        self.options: dict[str, Any] = {}
        monkeypatch.setattr(uvicorn, "run", self._run)

    def _run(self, app: FastAPI, **options: Any) -> None:
        self.app, self.options = app, options

    @property
    def settings(self) -> ServerSettings:
        assert self.app is not None, "the server was not started"
        settings: ServerSettings = self.app.state.edgefleet.settings
        return settings


def _server(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    from edgefleet.cli.main import app as cli

    command = ["server", "--db", f"sqlite:///{tmp_path / 'fleet.db'}", "--no-dashboard", *args]
    return CliRunner().invoke(cli, command, env={"EDGEFLEET_SECRETS_FILE": "", **(env or {})})


@pytest.mark.parametrize(
    "env",
    [
        {"EDGEFLEET_SECRET_KEY": "a" * 32, "EDGEFLEET_INGEST_PASSWORD": INGEST_PASSWORD},
        {"EDGEFLEET_SECRET_KEY": SECRET, "EDGEFLEET_INGEST_PASSWORD": "x"},
    ],
)
def test_edgefleet_server_refuses_weak_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    served = _Served(monkeypatch)
    result = _server(tmp_path, "--broker", "embedded", env=env)
    assert result.exit_code == 2 and "too weak" in result.output, result.output
    assert served.app is None


def test_edgefleet_server_generates_secrets_on_the_first_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    served = _Served(monkeypatch)
    first = _server(tmp_path, "--broker", "embedded")
    assert first.exit_code == 0, first.output
    path = tmp_path / "fleet.db.secrets.json"
    assert f"generated EDGEFLEET_SECRET_KEY, EDGEFLEET_INGEST_PASSWORD into {path}" in first.output.replace(
        "\n", ""
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    settings = served.settings
    assert settings.secret_key.get_secret_value() == stored["secret_key"] != DEFAULT_SECRET
    assert settings.ingest_password.get_secret_value() == stored["ingest_password"] != DEFAULT_INGEST_PASSWORD
    settings.require_safe()

    second = _server(tmp_path, "--broker", "embedded")  # the same secrets again: tokens stay valid
    assert second.exit_code == 0 and "generated" not in second.output, second.output
    assert served.settings.secret_key.get_secret_value() == stored["secret_key"]

    given = _server(tmp_path, env={"EDGEFLEET_SECRET_KEY": SECRET})  # given ones win; the rest is kept
    assert given.exit_code == 0, given.output
    assert served.settings.secret_key.get_secret_value() == SECRET
    assert served.settings.ingest_password.get_secret_value() == stored["ingest_password"]


def test_a_secrets_file_readable_by_others_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"secret_key": SECRET}))
    path.chmod(0o644)
    values, created = security.load_or_create_secrets(path)
    assert (
        created and values["secret_key"] == SECRET and security.weak_secret(values["ingest_password"]) is None
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.filterwarnings("ignore:The HMAC key is:UserWarning")
def test_demo_on_the_network_does_not_use_the_public_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    served = _Served(monkeypatch)
    result = _server(tmp_path, "--demo", "--host", "0.0.0.0")
    assert result.exit_code == 0, result.output
    assert served.settings.secret_key.get_secret_value() != DEFAULT_SECRET
    forged = security.issue_token(DEFAULT_SECRET, user_id=1, org_id=1, ttl_s=600)
    with pytest.raises(AuthError):
        security.read_token(served.settings.secret_key.get_secret_value(), forged)
    assert served.options["host"] == "0.0.0.0"

    refused = _server(
        tmp_path,
        "--demo",
        "--host",
        "0.0.0.0",
        env={"EDGEFLEET_SECRET_KEY": DEFAULT_SECRET, "EDGEFLEET_INGEST_PASSWORD": DEFAULT_INGEST_PASSWORD},
    )
    assert refused.exit_code == 2 and "demo mode off loopback" in refused.output, refused.output
