"""Issue 7 end to end: a real server and Mosquitto, a QR PNG from `edgefleet device qr`, a folder of images.

The camera node reads the code, claims its credentials from the server over HTTP (once: the same
code is refused afterwards), reports person events that the server stores, and a `reset_network`
command sent through the server's API returns it to provisioning.
"""

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image
from typer.testing import CliRunner

from edgefleet.cli.main import app as cli
from edgefleet.edge.camera import (
    CameraConfig,
    CameraNode,
    DetectionConfig,
    FolderSource,
    ListSource,
    PersonModel,
)
from edgefleet.edge.camera.runner import CameraRunner, RunnerOptions
from edgefleet.server import ServerSettings, create_app
from tests.support.services import MosquittoBroker, free_port, wait_for_port

pytestmark = pytest.mark.needs("shared", "mosquitto")
PASSWORD = "correct horse battery"


@pytest.fixture
def server(tmp_path: Path, mosquitto: MosquittoBroker) -> Iterator[str]:
    settings = ServerSettings.model_validate(
        {
            "db_url": f"sqlite:///{tmp_path / 'server.db'}",
            "broker": mosquitto.url,
            "secret_key": "AM1VDnBa3iidtmy6TuDX-KIWqCh8WF6z0-6N-uZSuqRb9YCk",
            "ingest_password": "Hq3-tzP8wLk0vRn6sYb2XcJ9mDf4gUa7eTi1oWq5NyKrBvZs",
            "allow_signup": True,
        }
    )
    port = free_port()
    web = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    wait_for_port(port, timeout=30)
    yield f"http://127.0.0.1:{port}"
    web.should_exit = True
    thread.join(timeout=10)


def _wait(condition: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_camera_provisions_from_qr_reports_events_and_resets(
    tmp_path: Path,
    server: str,
    mosquitto: MosquittoBroker,
    person_model: PersonModel,
    person_frame: np.ndarray,
    no_person_frame: np.ndarray,
) -> None:
    api = httpx.Client(base_url=server, timeout=10)
    signup = api.post(
        "/api/v1/auth/signup", json={"email": "o@plant.test", "password": PASSWORD, "organization": "P"}
    )
    assert signup.status_code == 201, signup.text
    auth = {"Authorization": f"Bearer {signup.json()['access_token']}"}
    added = api.post(
        "/api/v1/devices", json={"id": "door-cam", "name": "Door", "kind": "camera"}, headers=auth
    )
    assert added.status_code == 201, added.text
    token = added.json()["claim_token"]

    frames = tmp_path / "frames"
    made = CliRunner().invoke(
        cli,
        [
            "device",
            "qr",
            "--ssid",
            "Hall; B",
            "--password",
            "pass:word,1",
            "--server",
            server,
            "--device-id",
            "door-cam",
            "--token",
            token,
            "--out",
            str(frames),
        ],
    )
    assert made.exit_code == 0, made.output
    shutil.move(frames / "door-cam.png", frames / "000-code.png")
    (frames / "door-cam.svg").unlink()
    scene = [no_person_frame] * 2 + [person_frame] * 4 + [no_person_frame] * 4
    for i, frame in enumerate(scene):
        Image.fromarray(frame).save(frames / f"{i + 1:03d}.png")

    state = tmp_path / "state"
    config = CameraConfig(state_dir=state, detection=DetectionConfig(smoothing=1.0))
    node = CameraNode(config, person_model)
    runner = CameraRunner(
        node, FolderSource(frames, fps=50), RunnerOptions(realtime=False, broker_url=mosquitto.url)
    )
    assert runner.run() == 1 + len(scene)
    assert node.mode == "running" and node.device_id == "door-cam"
    assert node.network is not None and node.network.ssid == "Hall; B"

    def stored_events() -> list[dict[str, object]]:
        page = api.get("/api/v1/events", params={"device_id": "door-cam"}, headers=auth).json()
        return list(page["items"])

    assert _wait(lambda: len(stored_events()) >= 2), stored_events()
    assert sorted((e["kind"], e["active"]) for e in stored_events()) == [("person", False), ("person", True)]

    # The code's token is spent: a second device holding the same code stays in provisioning.
    other = CameraNode(CameraConfig(state_dir=tmp_path / "other"), person_model)
    other.process(np.asarray(Image.open(frames / "000-code.png").convert("L")))
    assert other.mode == "provisioning" and other.provisioning.rejected == {"refused": 1}

    # Reset through the server's API, while the node runs.
    stop = threading.Event()
    live = CameraRunner(
        node, ListSource([no_person_frame], fps=20, repeat=10_000), RunnerOptions(broker_url=mosquitto.url)
    )
    thread = threading.Thread(target=live.run, kwargs={"stop": stop})
    thread.start()
    try:
        assert _wait(lambda: live.link is not None and live.link.connected.is_set())
        sent = api.post("/api/v1/devices/door-cam/commands", json={"command": "reset_network"}, headers=auth)
        assert sent.status_code == 202, sent.text
        assert _wait(lambda: str(node.mode) == "provisioning")
        assert not node.store.path.exists()
    finally:
        stop.set()
        thread.join(timeout=15)
