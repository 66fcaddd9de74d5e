from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from edgefleet.cli.main import app
from edgefleet.edge.provisioning import decode_payload
from edgefleet.edge.provisioning.qr import scan_frame

runner = CliRunner()
QR_ARGS = [
    "device",
    "qr",
    "--ssid",
    "Shop, floor",
    "--server",
    "http://10.0.0.2:8000",
    "--device-id",
    "cam-3",
    "--token",
    "tok_0123456789",
]


def test_device_qr_writes_png_and_svg_that_scan_back(tmp_path: Path) -> None:
    result = runner.invoke(app, [*QR_ARGS, "--password", "s3cret;pass", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cam-3.svg").exists()
    (text,) = scan_frame(np.asarray(Image.open(tmp_path / "cam-3.png").convert("L")))
    payload = decode_payload(text)
    assert (payload.ssid, payload.passphrase, payload.device_id) == ("Shop, floor", "s3cret;pass", "cam-3")


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--password", "short"], "8-63 characters"), (["--security", "WPA3", "--password", "x" * 10], "WPA3")],
)
def test_device_qr_refuses_bad_input(tmp_path: Path, extra: list[str], message: str) -> None:
    result = runner.invoke(app, [*QR_ARGS, *extra, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.output
    assert not list(tmp_path.iterdir())


@pytest.mark.needs("shared")
def test_model_pull_from_a_local_copy(shared: Path, tmp_path: Path) -> None:
    source = shared / "models/person_detect/person_detect.tflite"
    result = runner.invoke(
        app, ["model", "pull", "person-detect", "--from", str(source), "--cache", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "person-detect" / "model_card.json").exists()


def test_train_vision_reports_a_bad_config_clearly(tmp_path: Path) -> None:
    config = tmp_path / "v.yaml"
    config.write_text("data: [not, a, mapping]\n")
    result = runner.invoke(app, ["model", "train-vision", str(config)])
    assert result.exit_code == 2
    assert "v.yaml" in result.output
