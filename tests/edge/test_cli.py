"""`edgefleet device replay`, `device run` and `sim`, through the CLI."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgefleet import dsp
from edgefleet.cli.main import app
from edgefleet.contracts import SensorSpec
from tests.edge.conftest import _tflm_scores
from tests.edge.modelkit import build_model_dir
from tests.edge.mqtt_helpers import Collector
from tests.support.services import MosquittoBroker

runner = CliRunner()
CWRU_BANDS = ((0.0, 500.0), (500.0, 1500.0), (1500.0, 3000.0), (3000.0, 6000.0))


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_replay_writes_one_decision_per_window_and_a_summary(model_dir: Path, tmp_path: Path) -> None:
    synth = dsp.VibrationSynth(seed=12)
    synth.schedule_fault(60.0, "bearing_outer", 1.0)
    chunk = synth.read(200 * 90)
    dsp.write_table_csv(tmp_path / "rec.csv", chunk.samples, chunk.labels, dsp.AXES)
    out = tmp_path / "decisions.jsonl"
    result = runner.invoke(
        app,
        [
            "device",
            "replay",
            "--model",
            str(model_dir),
            "--source",
            f"replay:{tmp_path / 'rec.csv'}",
            "--out",
            str(out),
            "--commission-windows",
            "40",
        ],
    )
    assert result.exit_code == 0, result.output
    records = read_jsonl(out)
    windows, summary = records[:-1], records[-1]["summary"]
    assert len(windows) == 200 * 90 // 128
    assert set(windows[0]) >= {"window", "score", "threshold", "state", "anomaly", "rejected"}
    assert [w["state"] for w in windows[:40]] == ["commissioning"] * 40
    assert isinstance(summary, dict) and summary["commissioned"] is True
    before = [bool(w["anomaly"]) for w in windows[40:90]]
    after = [bool(w["anomaly"]) for w in windows[100:]]
    assert np.mean(before) < 0.1 and np.mean(after) > 0.9
    raised = summary["events_raised"]
    assert isinstance(raised, dict) and raised["anomaly"] >= 1


def test_replay_reports_bad_recordings_and_missing_models(model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("ax,ay,az,gx,gy,gz,label\n0,0,1,0,0,0,normal\n0,0,1,0,0\n", encoding="utf-8")
    result = runner.invoke(
        app,
        [
            "device",
            "replay",
            "--model",
            str(model_dir),
            "--source",
            f"replay:{bad}",
            "--out",
            str(tmp_path / "o.jsonl"),
        ],
    )
    assert result.exit_code == 1 and "bad.csv:3" in result.output
    result = runner.invoke(
        app,
        [
            "device",
            "replay",
            "--model",
            str(tmp_path / "nope"),
            "--source",
            f"replay:{bad}",
            "--out",
            str(tmp_path / "o.jsonl"),
        ],
    )
    assert result.exit_code == 1 and "does not exist" in result.output


@pytest.fixture(scope="module")
def cwru_model(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small autoencoder for the CWRU drive-end channel (12 kHz, 1024-sample windows)."""
    normal = dsp.read_npz(shared / "datasets/cwru/cwru_1797_DE_float32.npz", keys=["1797_Normal"])[
        "1797_Normal"
    ]
    cfg = dsp.FeatureConfig.from_spec(12000.0, ("de",), ("stats", "spectral"), CWRU_BANDS)
    train = dsp.frame(normal[: int(len(normal) * 0.7)], 1024, 512)
    features = dsp.extract(train, cfg).astype(np.float64)
    sensor = SensorSpec(axes=["de"], units=["g"], range_min=[-16.0], range_max=[16.0])
    return build_model_dir(
        tmp_path_factory.mktemp("cwru") / "m",
        features,
        _tflm_scores,
        sample_rate_hz=12000.0,
        window=1024,
        hop=512,
        names=dsp.feature_names(cfg),
        sensor=sensor,
        sets=("stats", "spectral"),
        bands_hz=CWRU_BANDS,
        hidden=(8, 4, 8),
        epochs=80,
    )


@pytest.mark.needs("shared")
@pytest.mark.parametrize(
    ("key", "normal"), [("1797_Normal", True), ("1797_IR_7_DE12", False), ("1797_OR@6_21_DE12", False)]
)
def test_replay_on_cwru(shared: Path, cwru_model: Path, tmp_path: Path, key: str, normal: bool) -> None:
    out = tmp_path / "d.jsonl"
    source = f"replay:{shared / 'datasets/cwru/cwru_1797_DE_float32.npz'}#{key}"
    result = runner.invoke(
        app, ["device", "replay", "--model", str(cwru_model), "--source", source, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    summary = read_jsonl(out)[-1]["summary"]
    assert isinstance(summary, dict)
    assert summary["scored"] > 200
    rate = summary["anomaly_rate"]
    assert isinstance(rate, float)
    assert rate < 0.05 if normal else rate > 0.95


@pytest.mark.needs("mosquitto")
def test_sim_runs_a_100_device_fleet(mosquitto: MosquittoBroker, model_dir: Path, tmp_path: Path) -> None:
    collector = Collector(mosquitto.url, client_id="fleet-collector", ack=True)  # a fake ingest
    try:
        assert collector.wait_for(collector.client.is_connected, 5)
        result = runner.invoke(
            app,
            [
                "sim",
                "--devices",
                "100",
                "--model",
                str(model_dir),
                "--broker",
                mosquitto.url,
                "--duration",
                "8",
                "--speed",
                "4",
                "--telemetry-interval",
                "4",
                "--outbox-dir",
                str(tmp_path / "ob"),
                "--no-live",
                "--faults",
                "sim-000[1-5]=imbalance@2x2",
            ],
        )
        assert result.exit_code == 0, result.output
        totals = json.loads(result.stdout[result.stdout.index("{") :])
        assert totals["devices"] == 100 and totals["outbox_depth"] == 0
        assert collector.wait_for(lambda: len({t.device_id for t in collector.telemetry()}) == 100, 20)
    finally:
        collector.close()
    online = {s.device_id for s in collector.statuses() if s.state == "online"}
    assert len(online) == 100
    assert collector.invalid == []
    faulty = {e.device_id for e in collector.events() if e.kind == "anomaly" and e.active}
    assert {f"sim-000{i}" for i in range(1, 6)} <= faulty


def test_device_run_reports_bad_settings(model_dir: Path, tmp_path: Path) -> None:
    base = [
        "device",
        "run",
        "--id",
        "d1",
        "--model",
        str(model_dir),
        "--outbox-dir",
        str(tmp_path),
        "--no-ntp",
    ]
    result = runner.invoke(app, [*base, "--source", "carrier-pigeon:1"])
    assert result.exit_code == 1 and "unknown source" in result.output
    result = runner.invoke(app, [*base, "--broker", "http://example.com"])
    assert result.exit_code == 1 and "invalid device settings" in result.output
    result = runner.invoke(
        app, ["device", "run", "--id", "bad id!", "--outbox-dir", str(tmp_path), "--no-ntp"]
    )
    assert result.exit_code == 1 and "device_id" in result.output


def test_device_run_without_a_broker_keeps_its_events_in_the_outbox(tmp_path: Path) -> None:
    from edgefleet.edge.outbox import Outbox
    from tests.support.services import free_port

    result = runner.invoke(
        app,
        [
            "device",
            "run",
            "--id",
            "lonely",
            "--broker",
            f"mqtt://127.0.0.1:{free_port()}",
            "--outbox-dir",
            str(tmp_path),
            "--no-ntp",
            "--faults",
            "imbalance@2x2",
            "--speed",
            "50",
            "--duration",
            "20",
            "--telemetry-interval",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    box = Outbox(tmp_path / "lonely.sqlite")
    kinds = [m.kind for m in box.pending()]
    assert "event" in kinds and kinds.count("telemetry") >= 3  # degraded (no model): rule events
    box.close()


@pytest.mark.needs("mosquitto")
def test_device_run_over_a_recording_delivers_everything_before_exit(
    mosquitto: MosquittoBroker, model_dir: Path, tmp_path: Path
) -> None:
    synth = dsp.VibrationSynth(seed=12)
    synth.schedule_fault(20.0, "imbalance", 2.0)
    chunk = synth.read(200 * 40)
    dsp.write_table_csv(tmp_path / "rec.csv", chunk.samples, chunk.labels, dsp.AXES)
    collector = Collector(mosquitto.url, client_id="run-collector", ack=True)  # a fake ingest
    try:
        assert collector.wait_for(collector.client.is_connected, 5)
        result = runner.invoke(
            app,
            [
                "device",
                "run",
                "--id",
                "rec-1",
                "--model",
                str(model_dir),
                "--broker",
                mosquitto.url,
                "--source",
                f"replay:{tmp_path / 'rec.csv'}",
                "--speed",
                "100",
                "--outbox-dir",
                str(tmp_path / "ob"),
                "--no-ntp",
                "--backend",
                "int8ref",
                "--telemetry-interval",
                "10",
            ],
        )
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout[result.stdout.index("{") :])
        assert summary["outbox_depth_at_exit"] == 0 and summary["events"] >= 1
        assert collector.wait_for(lambda: len(collector.events()) == summary["events"], 10)
    finally:
        collector.close()
    assert {e.kind for e in collector.events()} >= {"anomaly"}
    assert len(collector.telemetry()) >= 3
