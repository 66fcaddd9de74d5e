"""The camera node's life: provisioning from a QR frame, person events through the outbox, reset."""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgefleet.contracts import Channel, Command, Event, Telemetry, decode_topic, utc_now
from edgefleet.edge.camera import CameraConfig, CameraNode, DetectionConfig, PersonModel, synthetic_frames
from edgefleet.edge.provisioning import (
    DeviceCredentials,
    ProvisioningError,
    ProvisioningPayload,
    encode_payload,
)
from edgefleet.edge.provisioning.qr import render_qr

pytestmark = pytest.mark.needs("shared")
TOKEN = "claim_0123456789abcdef"


class OneTimeClaims:
    """Server side of the claim, as the server does it: each token works once."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, payload: ProvisioningPayload) -> DeviceCredentials:
        if payload.claim_token in self.used:
            raise ProvisioningError("refused", "the server refused the claim token (401)")
        self.used.add(payload.claim_token)
        return DeviceCredentials(payload.device_id, payload.device_id, "s3cret", "mqtt://127.0.0.1:1883")


def qr_frame(tmp_path: Path, text: str) -> np.ndarray:
    png, _ = render_qr(text, tmp_path / "qr", scale=4)
    return np.asarray(Image.open(png).convert("L"))


def code(device_id: str = "cam-1", token: str = TOKEN) -> str:
    return encode_payload(
        ProvisioningPayload("Hall B", "passphrase1", "WPA", "http://127.0.0.1:8000", device_id, token)
    )


def outbox_messages(node: CameraNode) -> list[Event | Telemetry]:
    assert node.outbox is not None
    decoded = []
    for item in node.outbox.pending(limit=1000):
        _, message = decode_topic(item.topic, item.payload)
        assert message.seq == item.seq  # type: ignore[union-attr]
        assert isinstance(message, Event | Telemetry)
        decoded.append(message)
    return decoded


@pytest.fixture
def node(tmp_path: Path, person_model: PersonModel) -> CameraNode:
    return CameraNode(CameraConfig(state_dir=tmp_path / "state"), person_model, claimer=OneTimeClaims())


def test_stays_in_provisioning_until_a_valid_code(node: CameraNode, tmp_path: Path) -> None:
    for frame in synthetic_frames(3):
        node.process(frame)
    assert node.mode == "provisioning"
    node.process(qr_frame(tmp_path, "WIFI:T:WPA;S:home;P:12345678;;"))
    node.process(qr_frame(tmp_path, "https://example.com"))
    assert node.mode == "provisioning"
    assert node.provisioning.rejected == {"foreign": 2}
    node.process(qr_frame(tmp_path, code()))
    assert str(node.mode) == "running" and node.device_id == "cam-1"
    assert node.network is not None and node.network.ssid == "Hall B"


def test_one_person_is_one_event_and_leaving_clears_it(
    node: CameraNode, tmp_path: Path, person_frame: np.ndarray, no_person_frame: np.ndarray
) -> None:
    node.process(qr_frame(tmp_path, code()))
    for frame in [no_person_frame] * 3 + [person_frame] * 10 + [no_person_frame] * 6:
        node.process(frame)
    events = [m for m in outbox_messages(node) if isinstance(m, Event)]
    assert [(e.kind, e.active) for e in events] == [("person", True), ("person", False)]
    assert events[0].score is not None and events[0].score >= 0.6
    assert events[0].person_count == 1 and events[0].thumbnail_jpeg is None
    assert node.frames == 19


def test_a_single_person_frame_among_empty_ones_is_not_an_event(
    node: CameraNode, tmp_path: Path, person_frame: np.ndarray, no_person_frame: np.ndarray
) -> None:
    node.process(qr_frame(tmp_path, code()))
    for frame in [no_person_frame] * 4 + [person_frame] + [no_person_frame] * 4:
        node.process(frame)
    assert outbox_messages(node) == []


def test_thumbnail_is_a_small_jpeg_when_configured(
    tmp_path: Path, person_model: PersonModel, person_frame: np.ndarray
) -> None:
    config = CameraConfig(
        state_dir=tmp_path / "s", send_thumbnail=True, detection=DetectionConfig(smoothing=1.0)
    )
    node = CameraNode(config, person_model, claimer=OneTimeClaims())
    node.process(qr_frame(tmp_path, code()))
    node.process(person_frame)
    (event,) = outbox_messages(node)
    assert isinstance(event, Event) and event.thumbnail_jpeg is not None
    jpeg = base64.b64decode(event.thumbnail_jpeg)
    assert jpeg[:2] == b"\xff\xd8" and len(jpeg) < 48 * 1024


def test_telemetry_reports_frames_inference_time_and_detections(
    node: CameraNode, tmp_path: Path, person_frame: np.ndarray
) -> None:
    node.process(qr_frame(tmp_path, code()))
    for _ in range(4):
        node.process(person_frame)
    node.put_telemetry(interval_s=60)
    (telemetry,) = [m for m in outbox_messages(node) if isinstance(m, Telemetry)]
    assert telemetry.windows == 4 and telemetry.mode == "running"
    assert telemetry.inference_us is not None and telemetry.inference_us > 0
    assert telemetry.detections_per_hour is not None and telemetry.detections_per_hour > 0
    assert telemetry.arena_bytes == node.model.backend.arena_bytes


def test_settings_survive_a_restart_and_seq_continues(
    tmp_path: Path, person_model: PersonModel, person_frame: np.ndarray, no_person_frame: np.ndarray
) -> None:
    config = CameraConfig(state_dir=tmp_path / "s", detection=DetectionConfig(smoothing=1.0))
    first = CameraNode(config, person_model, claimer=OneTimeClaims())
    first.process(qr_frame(tmp_path, code()))
    first.process(person_frame)
    first.process(no_person_frame)
    seqs = [m.seq for m in outbox_messages(first)]
    second = CameraNode(config, person_model, claimer=OneTimeClaims())
    assert second.mode == "running" and second.device_id == "cam-1"
    second.process(person_frame)
    assert [m.seq for m in outbox_messages(second)] == [*seqs, seqs[-1] + 1]


def test_reset_by_command_wipes_settings_and_a_used_token_is_refused(
    node: CameraNode, tmp_path: Path
) -> None:
    node.process(qr_frame(tmp_path, code()))
    settings_file = node.store.path
    assert json.loads(settings_file.read_text())["credentials"]["password"] == "s3cret"
    node.handle_command(Command(device_id="cam-1", ts=utc_now(), command_id="c1", command="reset_network"))
    assert node.mode == "provisioning" and node.network is None and not settings_file.exists()
    node.process(qr_frame(tmp_path, code()))  # the same, already used token
    assert node.mode == "provisioning"
    assert node.provisioning.rejected == {"refused": 1}
    node.process(qr_frame(tmp_path, code(token="claim_fresh_token_42")))
    assert str(node.mode) == "running"


def test_corrupt_settings_file_means_not_provisioned(tmp_path: Path, person_model: PersonModel) -> None:
    state = tmp_path / "s"
    state.mkdir()
    (state / "provisioning.json").write_text("{not json")
    node = CameraNode(CameraConfig(state_dir=state), person_model)
    assert node.mode == "provisioning"


def test_events_are_on_the_device_topic(node: CameraNode, tmp_path: Path, person_frame: np.ndarray) -> None:
    node.process(qr_frame(tmp_path, code(device_id="cam-9")))
    for _ in range(3):
        node.process(person_frame)
    assert node.outbox is not None
    (item,) = node.outbox.pending()
    address, _ = decode_topic(item.topic, item.payload)
    assert (address.device_id, address.channel) == ("cam-9", Channel.EVENT)
