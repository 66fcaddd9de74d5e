"""`edgefleet model push` against a real server (uvicorn on a thread) with a real int8 model."""

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from edgefleet.cli.main import app
from edgefleet.contracts.model_package import read_package, verify_signature
from edgefleet.server import create_app
from tests.edge.modelkit import build_model_dir
from tests.server.conftest import PASSWORD, make_settings
from tests.support.services import free_port, serve_app

runner = CliRunner()


@dataclass
class Server:
    url: str
    owner_key: str
    viewer_key: str
    api: httpx.Client

    def models(self) -> list[dict[str, object]]:
        listed: list[dict[str, object]] = self.api.get("/api/v1/models").json()
        return listed


def _api_key(client: httpx.Client, token: str) -> str:
    response = client.post(
        "/api/v1/auth/api-keys", json={"name": "push"}, headers={"Authorization": f"Bearer {token}"}
    )
    response.raise_for_status()
    key: str = response.json()["key"]
    return key


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    def make_app(url: str) -> FastAPI:
        return create_app(make_settings(tmp_path_factory.mktemp("push-server"), public_url=url))

    with serve_app(make_app) as (url, _app):
        client = httpx.Client(base_url=url, timeout=30)
        signup = {"email": "owner@push.example", "password": PASSWORD, "organization": "Push"}
        token = client.post("/api/v1/auth/signup", json=signup).json()["access_token"]
        client.cookies.clear()
        client.headers["Authorization"] = f"Bearer {token}"
        invite = client.post(
            "/api/v1/users/invites", json={"email": "viewer@push.example", "role": "viewer"}
        ).json()
        accepted = httpx.post(
            f"{url}/api/v1/auth/invites/accept", json={"token": invite["token"], "password": PASSWORD}
        )
        viewer_key = _api_key(httpx.Client(base_url=url), accepted.json()["access_token"])
        yield Server(url, _api_key(client, token), viewer_key, client)
        client.close()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real int8 autoencoder directory as the model factory leaves it (without self_test.json)."""
    rng = np.random.default_rng(3)
    features = rng.normal(size=(400, 6)) * np.arange(1, 7) + np.arange(6)
    directory = build_model_dir(
        tmp_path_factory.mktemp("export") / "ae",
        features,
        names=[f"f{i}" for i in range(6)],
        hidden=(4,),
        epochs=5,
    )
    (directory / "report.json").write_text(json.dumps({"int8": {"auc": 0.9}}))
    return directory


def _copy(exported: Path, tmp_path: Path, version: str) -> Path:
    directory = tmp_path / "model"
    shutil.copytree(exported, directory)
    card = json.loads((directory / "model_card.json").read_text())
    card["model_version"] = version
    (directory / "model_card.json").write_text(json.dumps(card))
    return directory


def test_push_uploads_signs_and_sets_the_default(server: Server, exported: Path, tmp_path: Path) -> None:
    directory = _copy(exported, tmp_path, "1.0.0")
    args = [
        "model",
        "push",
        str(directory),
        "--server",
        server.url,
        "--api-key",
        server.owner_key,
        "--default",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    model = next(m for m in server.models() if m["version"] == "1.0.0")
    assert model["is_default"] and model["self_test_cases"] == 4
    assert f"is model {model['id']} in the registry" in result.output
    for figure in (model["sha256"], model["key_id"], "default for  vibration"):
        assert str(figure) in result.output
    cases = json.loads((directory / "self_test.json").read_text())  # computed and kept in the directory
    assert len(cases) == 4
    manifest = server.api.get(f"/api/v1/models/{model['id']}/manifest").json()
    assert (
        manifest["self_test"] == cases
        and manifest["url"] == f"{server.url}/api/v1/ota/packages/{model['id']}"
    )
    key = server.api.get("/api/v1/organization/signing-key").json()
    detail = server.api.get(f"/api/v1/models/{model['id']}").json()
    assert detail["report"] == {"int8": {"auc": 0.9}}

    device = server.api.post("/api/v1/devices", json={"id": "push-dev"}).json()
    claim = httpx.post(
        f"{server.url}/api/v1/devices/claim",
        json={"device_id": "push-dev", "claim_token": device["claim_token"]},
    ).json()
    package = httpx.get(manifest["url"], auth=("push-dev", claim["password"])).content
    verify_signature(package, manifest["signature"], key["public_key"])
    assert read_package(package).tflite == (directory / "model.tflite").read_bytes()

    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "already in the registry" in again.output


def test_push_reads_the_key_from_the_environment(server: Server, exported: Path, tmp_path: Path) -> None:
    directory = _copy(exported, tmp_path, "1.1.0")
    (directory / "self_test.json").write_text(json.dumps([{"input_int8": [1] * 6, "expected_int8": [2] * 6}]))
    result = runner.invoke(
        app,
        ["model", "push", str(directory), "--server", server.url],
        env={"EDGEFLEET_API_KEY": server.owner_key},
    )
    assert result.exit_code == 0, result.output
    model = next(m for m in server.models() if m["version"] == "1.1.0")
    assert model["self_test_cases"] == 1 and not model["is_default"]  # the directory's cases, as given


def _break(directory: Path, case: str) -> None:
    if case == "no-card":
        (directory / "model_card.json").unlink()
    elif case == "bad-card":
        (directory / "model_card.json").write_text('{"model_id": "x"}')
    elif case == "not-tflite":
        (directory / "model.tflite").write_bytes(b"GIF89a not a model at all")
    elif case == "bad-report":
        (directory / "report.json").write_text("[1, 2")
    elif case == "bad-self-test":
        (directory / "self_test.json").write_text('{"input_int8": []}')
    elif case == "self-test-shape":  # the server checks the cases against the card
        (directory / "self_test.json").write_text(json.dumps([{"input_int8": [1], "expected_int8": [2]}]))


@pytest.mark.parametrize(
    ("case", "message"),
    [("no-card", "lacks model_card.json"), ("bad-card", "is not a valid model card"),
     ("not-tflite", "not a TFLite flatbuffer"), ("bad-report", "report.json is not JSON"),
     ("bad-self-test", "JSON list"), ("self-test-shape", "the server refused the model")],
)  # fmt: skip
def test_bad_directories_upload_nothing(
    server: Server, exported: Path, tmp_path: Path, case: str, message: str
) -> None:
    directory = _copy(exported, tmp_path, f"9.0.{case}")
    _break(directory, case)
    before = len(server.models())
    result = runner.invoke(
        app, ["model", "push", str(directory), "--server", server.url, "--api-key", server.owner_key]
    )
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert len(server.models()) == before


@pytest.mark.parametrize(
    ("key", "server_url", "message"),
    [(None, None, "an API key is needed"), ("efk_wrong", None, "refused the API key"),
     ("viewer", None, "needs the admin role"), ("owner", "unreachable", "cannot reach the server"),
     ("owner", "ftp://x", "must be an http:// or https:// URL")],
)  # fmt: skip
def test_credential_and_server_errors(
    server: Server, exported: Path, tmp_path: Path, key: str | None, server_url: str | None, message: str
) -> None:
    directory = _copy(exported, tmp_path, "7.0.0")
    (directory / "self_test.json").write_text(json.dumps([{"input_int8": [1] * 6, "expected_int8": [2] * 6}]))
    api_key = {"owner": server.owner_key, "viewer": server.viewer_key}.get(key or "", key)
    url = {"unreachable": f"http://127.0.0.1:{free_port()}", None: server.url}.get(server_url, server_url)
    args = ["model", "push", str(directory), "--server", str(url)] + (
        ["--api-key", api_key] if api_key else []
    )
    result = runner.invoke(app, args, env={"EDGEFLEET_API_KEY": ""})
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert not any(m["version"] == "7.0.0" for m in server.models())
