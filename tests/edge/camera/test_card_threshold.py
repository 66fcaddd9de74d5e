"""The twin raises a person event at the model card's threshold, as the firmware does (the card's
threshold unless one is configured, else 0.6), not at a fixed 0.6."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgefleet.contracts import Event, decode_topic
from edgefleet.edge.backends.tflm import TflmBackend
from edgefleet.edge.camera import CameraConfig, CameraNode, DetectionConfig, PersonModel
from edgefleet.edge.camera.detector import DEFAULT_THRESHOLD_ON
from edgefleet.edge.model import load_model_dir
from edgefleet.edge.provisioning import DeviceCredentials, NetworkSettings, SettingsStore

pytestmark = pytest.mark.needs("shared")


class ScriptedScores(PersonModel):
    """The real person model's card and backend; the scores come from a script (one per frame)."""

    def __init__(self, model_dir: Path, scores: list[float]) -> None:
        bundle = load_model_dir(model_dir)
        super().__init__(bundle, TflmBackend(bundle))
        self.scores = iter(scores)

    def score(self, frame: np.ndarray) -> float:
        return next(self.scores)


def with_card_threshold(source: Path, root: Path, value: float | None) -> Path:
    model_dir = root / f"card-{value}"
    shutil.copytree(source, model_dir)
    card = json.loads((model_dir / "model_card.json").read_text())
    card["threshold"] = None if value is None else {"value": value, "policy": "fixed"}
    (model_dir / "model_card.json").write_text(json.dumps(card))
    return model_dir


def person_events(
    model_dir: Path, state: Path, scores: list[float], detection: DetectionConfig
) -> list[Event]:
    SettingsStore(state).save(
        NetworkSettings("lab", "passphrase1", "WPA", False, "http://127.0.0.1:8000"),
        DeviceCredentials("cam-t", "cam-t", "s3cret", "mqtt://127.0.0.1:1883"),
    )
    node = CameraNode(CameraConfig(state_dir=state, detection=detection), ScriptedScores(model_dir, scores))
    try:
        for _ in scores:
            node.process(np.zeros((96, 96), np.uint8))
        assert node.outbox is not None
        events = [decode_topic(item.topic, item.payload)[1] for item in node.outbox.pending(limit=100)]
        return [e for e in events if isinstance(e, Event)]
    finally:
        if node.outbox is not None:
            node.outbox.close()


SCORES = [0.1, 0.7, 0.7, 0.3, 0.85, 0.85, 0.2]  # 0.7 crosses 0.6 but not 0.8


@pytest.mark.parametrize(
    ("card", "configured", "expected_on", "raised_at"),
    [
        (0.8, None, 0.8, [4]),  # the card's threshold (the twin used to raise at 0.6, at frame 1)
        (None, None, DEFAULT_THRESHOLD_ON, [1, 4]),  # no threshold on the card: 0.6
        (0.8, 0.65, 0.65, [1, 4]),  # a configured threshold wins over the card's
    ],
)
def test_person_events_use_the_cards_threshold_unless_one_is_configured(
    person_model_dir: Path, tmp_path: Path, card: float | None, configured: float | None, expected_on: float,
    raised_at: list[int],
) -> None:  # fmt: skip
    model_dir = with_card_threshold(person_model_dir, tmp_path, card)
    detection = DetectionConfig(threshold_on=configured, smoothing=1.0)
    events = person_events(model_dir, tmp_path / "state", SCORES, detection)
    raised = [e for e in events if e.active]
    assert [e.score for e in raised] == [SCORES[i] for i in raised_at]
    assert all(e.threshold == expected_on for e in events) and len(events) == 2 * len(raised_at)


def test_a_card_threshold_at_or_below_threshold_off_is_refused(
    person_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = with_card_threshold(person_model_dir, tmp_path, 0.35)
    with pytest.raises(ValueError, match=r"card's threshold 0.35 .*threshold_off \(0.4\)"):
        CameraNode(CameraConfig(state_dir=tmp_path / "s"), ScriptedScores(model_dir, []))
    assert DetectionConfig(threshold_off=0.2).for_card(0.35).threshold_on == 0.35


@pytest.mark.parametrize("card", [None, 0.45, 0.8])
@pytest.mark.parametrize("configured", [None, 0.7])
def test_the_twin_and_the_firmware_choose_the_same_threshold(
    person_model_dir: Path, card: float | None, configured: float | None
) -> None:
    from edgefleet.contracts import ThresholdSpec
    from edgefleet.ml.firmware import FirmwareOptions
    from edgefleet.ml.firmware.camera import _thresholds

    bundle = load_model_dir(person_model_dir)
    spec = None if card is None else ThresholdSpec(value=card, policy="fixed")
    firmware_card = bundle.card.model_copy(update={"threshold": spec})
    options = FirmwareOptions.model_validate({"camera": {"threshold_on": configured}})
    twin = DetectionConfig(threshold_on=configured).for_card(card)
    assert _thresholds(firmware_card, options) == twin.threshold_on
