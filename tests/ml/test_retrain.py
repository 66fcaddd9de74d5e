"""`edgefleet model retrain --from-server`: field windows seeded into a real server (uvicorn on a
thread, SQLite), downloaded over HTTP, a candidate trained with the pipeline, compared with the
deployed model. The field machine runs faster and with a re-mounted sensor than the deployed model
was trained for, so the deployed model false-alarms on it and the candidate should not."""

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from fastapi import FastAPI
from typer.testing import CliRunner

from edgefleet import dsp
from edgefleet.cli.main import app
from edgefleet.cli.retrain_cmd import parse_since
from edgefleet.contracts import load_model_card
from edgefleet.ml.errors import RetrainError
from edgefleet.ml.fleet_client import FleetClient
from edgefleet.ml.retrain import next_version
from edgefleet.server import create_app
from edgefleet.server.ingest import IngestStore
from tests.edge import modelkit
from tests.edge.conftest import _tflm_scores, synth_windows
from tests.ml.helpers import tiny_synthetic
from tests.server.conftest import PASSWORD, make_settings
from tests.server.window_samples import T0, ingest, window_sample
from tests.support.services import serve_app

runner = CliRunner()
DEVICES = ("line-1", "line-2", "line-3", "line-4")
PER_DEVICE = 80


@dataclass
class Fleet:
    url: str
    key: str
    api: httpx.Client


def field_windows(device: int, n: int) -> np.ndarray:
    """The field machine: 10% faster shaft, sensor re-mounted with 25% more gain."""
    synth = dsp.VibrationSynth(dsp.MachineConfig(shaft_hz=16.5), seed=100 + device)
    synth.schedule_gain(0.0, 1.25)
    return dsp.frame(synth.read(n * 128).samples.astype(np.float64), 128, 128).copy()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    def make_app(url: str) -> FastAPI:
        return create_app(make_settings(tmp_path_factory.mktemp("retrain-server"), public_url=url))

    with serve_app(make_app) as (url, server_app):
        api = httpx.Client(base_url=url, timeout=30)
        signup = {"email": "owner@retrain.example", "password": PASSWORD, "organization": "Retrain"}
        token = api.post("/api/v1/auth/signup", json=signup).json()["access_token"]
        api.cookies.clear()
        api.headers["Authorization"] = f"Bearer {token}"
        key = api.post("/api/v1/auth/api-keys", json={"name": "retrain"}).json()["key"]
        store = IngestStore(server_app.state.edgefleet.sessions)
        for d, device_id in enumerate(DEVICES):
            assert api.post("/api/v1/devices", json={"id": device_id}).status_code == 201
            samples = [
                window_sample(device_id, seq, window, ts=T0 + timedelta(seconds=10 * seq))
                for seq, window in enumerate(field_windows(d, PER_DEVICE))
            ]
            assert ingest(store, samples).stored == {"sample": PER_DEVICE}
        yield Fleet(url, key, api)
        api.close()


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The deployed model: trained on the original machine (stats features), vib-ae 1.0.0."""
    windows = np.concatenate([synth_windows(200, seed=seed) for seed in (11, 12)])
    features = dsp.extract(windows, dsp.FeatureConfig.from_spec(200.0, tuple(dsp.AXES), ("stats",)))
    with pytest.MonkeyPatch.context() as patch:  # its arena size plays no part here: skip the probes
        patch.setattr(modelkit, "measure_arena", lambda _tflite: 4096)
        directory = modelkit.build_model_dir(
            tmp_path_factory.mktemp("deployed") / "ae", features, _tflm_scores, epochs=25
        )
    card = json.loads((directory / "model_card.json").read_text())
    card.update(model_id="vib-ae", model_version="1.0.0")
    (directory / "model_card.json").write_text(json.dumps(card))
    return directory


@pytest.fixture(scope="module")
def registered(fleet: Fleet, deployed: Path) -> Path:
    """The deployed model in the server's registry too (not the default of its kind)."""
    files = {
        "model_tflite": ("model.tflite", (deployed / "model.tflite").read_bytes()),
        "model_card": ("model_card.json", (deployed / "model_card.json").read_bytes()),
    }
    uploaded = fleet.api.post("/api/v1/models", files=files)
    assert uploaded.status_code == 201, uploaded.text
    return deployed


def write_config(path: Path, **overrides: Any) -> Path:
    data = tiny_synthetic(path.parent / "data" / "tiny.csv")
    data["training"] = {"epochs": 25, "batch_size": 32, "learning_rate": 0.01, "patience": 8}
    data["targets"] = ["esp32-s3"]
    data.update(overrides)
    path.write_text(yaml.safe_dump(data))
    return path


def retrain_args(fleet: Fleet, config: Path, out: Path, *extra: str) -> list[str]:
    return [
        "model", "retrain", "--from-server", fleet.url, "--api-key", fleet.key, "--config", str(config),
        "--model-id", "vib-ae", "--out", str(out), *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_retrain_builds_a_candidate_that_fits_the_field_better(
    fleet: Fleet, deployed: Path, tmp_path: Path
) -> None:
    out = tmp_path / "candidate"
    args = retrain_args(fleet, write_config(tmp_path / "tiny.yaml"), out, "--deployed", str(deployed))
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "false alarms" in result.output and "fault recall" in result.output

    assert {"model.tflite", "model_card.json", "report.json", "retrain_report.json"} <= {
        p.name for p in out.iterdir()
    }
    report = json.loads((out / "retrain_report.json").read_text())
    card = load_model_card(out / "model_card.json")
    assert (card.model_id, card.model_version) == ("vib-ae", "1.0.1")  # deployed 1.0.0 + 1
    assert card.lineage.parent_model == "vib-ae@1.0.0"
    assert card.training_data_sha256 == report["field_data"]["sha256"]

    field = report["field_data"]
    assert (field["downloaded"], field["used"], field["devices"], field["skipped"]) == (320, 320, 4, {})
    assert field["model_versions"] == {"1.0.0": 320}
    assert all(
        split == {"train": 48, "calibration": 16, "test": 16} for split in field["per_device"].values()
    )
    assert report["faults"]["windows"] > 0 and report["faults"]["source"].endswith("tiny.csv")

    candidate, previous = report["candidate"], report["deployed"]
    assert candidate["evaluated"] and previous["evaluated"]
    assert candidate["field"]["windows"] == previous["field"]["windows"] == 64
    assert candidate["threshold"] == card.threshold.value if card.threshold else False
    assert previous["threshold"] == load_model_card(deployed / "model_card.json").threshold.value  # type: ignore[union-attr]
    # The deployed model was trained on another machine: it false-alarms there; the candidate fits it.
    assert previous["field"]["false_alarm_rate"] > 0.3
    assert candidate["field"]["false_alarm_rate"] < 0.1
    assert report["delta"]["false_alarm_rate"] < -0.2
    assert previous["field"]["p95_vs_card"] > 2
    assert 0.3 < candidate["field"]["p95_vs_card"] < 3
    assert candidate["fault_recall"] is not None and previous["fault_recall"] is not None
    assert report["training"]["train_windows"] == 4 * 48
    trained = json.loads((out / "report.json").read_text())
    assert "samples: 320 windows from 4 devices" in trained["data"]["path"]
    assert trained["int8"]["auc"] is not None  # the config's dataset gave fault windows


def test_the_registry_gives_the_deployed_card(fleet: Fleet, registered: Path) -> None:
    deployed = registered
    with FleetClient(fleet.url, fleet.key) as client:
        found = client.deployed_model("vib-ae", prefer_version="1.0.0")
        assert found is not None
        assert (found.model_id, found.version) == ("vib-ae", "1.0.0")
        assert found.card.threshold == load_model_card(deployed / "model_card.json").threshold
        if found.tflite is not None:  # only if the registry serves packages to users
            assert found.tflite == (deployed / "model.tflite").read_bytes()
        assert client.deployed_model("vib-ae", prefer_version="9.9.9") is None  # and no default set
        assert client.deployed_model("no-such-model") is None


@pytest.mark.slow
def test_without_fault_data_or_a_deployed_model_the_report_says_so(
    fleet: Fleet, registered: Path, tmp_path: Path
) -> None:
    """No --deployed: the registry's entry for the version the devices ran; it gives the card only
    (unless it serves packages to users). The config's dataset is absent: no fault windows."""
    data = tiny_synthetic(tmp_path / "missing" / "none.csv")
    data["data"] = {**data["data"], "synth": None}
    config = write_config(tmp_path / "nodata.yaml", data=data["data"])
    config.write_text(config.read_text().replace("epochs: 25", "epochs: 5"))
    out = tmp_path / "candidate"
    result = runner.invoke(app, retrain_args(fleet, config, out, "--version", "2.0.0-field"))
    assert result.exit_code == 0, result.output
    report = json.loads((out / "retrain_report.json").read_text())
    card = load_model_card(out / "model_card.json")
    assert (card.model_version, card.lineage.parent_model) == ("2.0.0-field", "vib-ae@1.0.0")
    assert report["faults"]["windows"] == 0 and "no such file" in report["faults"]["reason"]
    assert "no fault windows" in result.output
    assert report["candidate"]["evaluated"] and report["candidate"]["fault_recall"] is None
    assert "auc" not in " ".join(card.metrics) and "false_alarm_rate" in card.metrics
    previous = report["deployed"]
    assert previous["model_version"] == "1.0.0" and "registry" in previous["source"]
    assert previous["threshold"] == registered_threshold(registered)
    if not previous["evaluated"]:
        assert "pass --deployed DIR" in previous["reason"]
        assert report["delta"] == {"false_alarm_rate": None, "fault_recall": None}
    trained = json.loads((out / "report.json").read_text())
    assert trained["int8"]["auc"] is None and trained["int8"]["recall"] is None
    assert "n/a (no anomaly windows)" in (out / "report.html").read_text()


def registered_threshold(directory: Path) -> float:
    threshold = load_model_card(directory / "model_card.json").threshold
    assert threshold is not None
    return threshold.value


def test_too_few_or_unfitting_windows_are_refused_clearly(fleet: Fleet, tmp_path: Path) -> None:
    config = write_config(tmp_path / "tiny.yaml")
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    result = runner.invoke(app, retrain_args(fleet, config, tmp_path / "a", "--since", future))
    assert result.exit_code == 1
    assert "only 0 usable field windows" in result.output and "at least 200" in result.output
    assert "samples" in result.output

    data = tiny_synthetic(tmp_path / "data" / "tiny.csv")
    data["data"] = {**data["data"], "window": 256, "hop": 128, "test_hop": 256}
    other = write_config(tmp_path / "wide.yaml", data=data["data"])
    result = runner.invoke(app, retrain_args(fleet, other, tmp_path / "b"))
    assert result.exit_code == 1
    assert "320 more did not fit the config" in result.output and "window_length" in result.output
    assert not (tmp_path / "b").exists()


def test_server_problems_are_reported_clearly(fleet: Fleet, tmp_path: Path) -> None:
    config = write_config(tmp_path / "tiny.yaml")
    args = retrain_args(fleet, config, tmp_path / "a")
    bad_key = [*args[: args.index("--api-key") + 1], "efk_wrong", *args[args.index("--api-key") + 2 :]]
    result = runner.invoke(app, bad_key)
    assert result.exit_code == 1 and "refused the API key" in result.output
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    result = runner.invoke(app, [*args[:2], "--from-server", nowhere, *args[4:]])
    assert result.exit_code == 1 and "cannot reach the server" in result.output
    result = runner.invoke(
        app, [a for a in args if a not in ("--api-key", fleet.key)], env={"EDGEFLEET_API_KEY": ""}
    )
    assert result.exit_code == 1 and "API key is needed" in result.output


def test_since_and_versions() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("2026-12-01T08:00", now) == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert parse_since(None) is None
    assert [next_version(v) for v in ("1.0.0", "3", "2.1-rc", "1.0.9")] == [
        "1.0.1",
        "4",
        "2.1-rc.1",
        "1.0.10",
    ]
    with pytest.raises(RetrainError, match="--version"):
        next_version("x" * 32)
