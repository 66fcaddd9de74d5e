"""The camera pipeline reproduces the reference outputs in shared/models/person_detect/README.md."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgefleet.contracts import load_model_card
from edgefleet.edge.camera import PersonModel, frame_to_input

pytestmark = pytest.mark.needs("shared")


def test_device_pipeline_matches_the_documented_outputs(
    person_model: PersonModel, person_frame: np.ndarray, no_person_frame: np.ndarray
) -> None:
    person = person_model.raw_output(frame_to_input(person_frame, 96, 96))
    no_person = person_model.raw_output(frame_to_input(no_person_frame, 96, 96))
    assert person.tolist() == [-113, 113]
    assert no_person.tolist() == [77, -77]  # uint8 pixels minus 128, as the README documents
    assert person_model.score(person_frame) > 0.9
    assert person_model.score(no_person_frame) < 0.2


def test_upstream_raw_byte_convention_is_reproduced(shared: Path, person_model: PersonModel) -> None:
    """Upstream feeds the files' raw bytes as int8, rows top-down: [-113, 113] and [57, -57]."""
    outputs = {}
    for name in ("person", "no_person"):
        raw = np.asarray(Image.open(shared / f"models/person_detect/{name}.bmp")).view(np.int8)
        outputs[name] = person_model.raw_output(raw).tolist()
    assert outputs == {"person": [-113, 113], "no_person": [57, -57]}


def test_rgb_frames_of_another_size_are_converted_like_the_device(
    person_model: PersonModel, person_frame: np.ndarray
) -> None:
    """A 2x RGB version of the person image, on a wider canvas: cropped and resized back to ~the original."""
    big = np.asarray(Image.fromarray(person_frame).resize((192, 192), Image.Resampling.BILINEAR))
    canvas = np.full((192, 256), 128, dtype=np.uint8)
    canvas[:, 32:224] = big
    rgb = np.stack([canvas] * 3, axis=-1)
    converted = frame_to_input(rgb, 96, 96).astype(np.int16)
    original = frame_to_input(person_frame, 96, 96).astype(np.int16)
    assert np.abs(converted - original).mean() < 4
    assert person_model.score(rgb) > 0.6  # still above the default detection threshold


def test_pulled_model_card_describes_the_model(person_model_dir: Path) -> None:
    card = load_model_card(person_model_dir / "model_card.json")
    assert card.task == "person_detection" and card.device_kind == "camera"
    assert card.flash_bytes == 300_568
    assert set(card.ops) == {"AVERAGE_POOL_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "RESHAPE", "SOFTMAX"}
    assert 50_000 < card.arena_bytes <= 136 * 1024  # measured; upstream allots 136 KB
    assert card.input.shape == [1, 96, 96, 1] and card.input.quantization is not None
    assert card.input.quantization.zero_point == -1
    assert card.labels == ["no_person", "person"]
