"""train-vision, briefly, on a small generated set: artifacts a camera node can run as they are."""

import json
from pathlib import Path

import numpy as np
import pytest

from edgefleet.contracts import load_model_card
from edgefleet.edge.backends.tflm import TflmBackend
from edgefleet.edge.camera import PersonModel
from edgefleet.edge.model import load_model_dir
from edgefleet.ml.errors import ConfigError, DatasetError
from edgefleet.ml.vision import VisionConfig, load_vision_config, train_vision
from edgefleet.ml.vision.data import load_images, stratified_split
from edgefleet.ml.vision.report import classification_metrics
from edgefleet.ml.vision.synthetic import make_image, write_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    root = write_dataset(tmp_path_factory.mktemp("images"), per_class=300, seed=1)
    (root / "person" / "broken.png").write_bytes(b"not a png")
    config = VisionConfig.model_validate(
        {
            "data": {"root": str(root)},
            "training": {"epochs": 30, "batch_size": 16},
            "augment": {"shift": 0.05, "zoom": 0.05, "brightness": 0.1, "contrast": 0.1},
        }
    )
    stages: list[str] = []
    out = tmp_path_factory.mktemp("model")
    result = train_vision(config, out, progress=lambda stage, _f: stages.append(stage))
    assert {"load", "train", "quantize", "evaluate"} <= set(stages)
    return out, result.report


@pytest.mark.slow
def test_artifacts_and_report(trained: tuple[Path, dict[str, object]]) -> None:
    out, report = trained
    for name in (
        "model.tflite",
        "model_float.tflite",
        "model_data.h",
        "model_data.cc",
        "model_card.json",
        "report.json",
        "report.html",
    ):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "report.json").read_text())
    assert saved == json.loads(json.dumps(report))  # the returned report is what was written
    assert saved["int8"]["accuracy"] >= 0.85  # chance is 0.5; 0.97 on this machine
    assert abs(saved["int8"]["accuracy"] - saved["float"]["accuracy"]) <= 0.05
    assert sum(map(sum, saved["int8"]["confusion_matrix"])) == saved["data"]["split"]["test"]
    assert saved["data"]["rejected"] == 1 and "broken.png" in saved["data"]["rejected_files"][0]
    assert set(saved["targets"]) == {"esp32-s3", "esp32", "cortex-m4f", "nrf52840"}
    assert all(t["est_latency_ms"] > 0 for t in saved["targets"].values())
    assert saved["model"]["arena_bytes"] < 64 * 1024 and "CONV_2D" in saved["model"]["ops"]
    assert "Confusion matrix" in (out / "report.html").read_text()


@pytest.mark.slow
def test_exported_model_runs_on_the_camera_node(trained: tuple[Path, dict[str, object]]) -> None:
    out, _ = trained
    card = load_model_card(out / "model_card.json")
    assert card.task == "person_detection" and card.labels == ["no_person", "person"]
    bundle = load_model_dir(out)
    model = PersonModel(bundle, TflmBackend(bundle))  # refuses a model with the wrong input mapping
    rng = np.random.default_rng(7)
    person = np.mean([model.score(make_image("person", rng)) for _ in range(20)])
    empty = np.mean([model.score(make_image("no_person", rng)) for _ in range(20)])
    assert person > empty + 0.2


def test_missing_class_folder_and_too_few_images(tmp_path: Path) -> None:
    write_dataset(tmp_path / "a", per_class=3)
    config = VisionConfig.model_validate({"data": {"root": str(tmp_path / "a")}})
    with pytest.raises(DatasetError, match="3 usable images; need at least 8"):
        load_images(config.data)
    (tmp_path / "b" / "person").mkdir(parents=True)
    with pytest.raises(DatasetError, match="missing class folder no_person/"):
        load_images(VisionConfig.model_validate({"data": {"root": str(tmp_path / "b")}}).data)


def test_config_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "vision.yaml"
    path.write_text("data:\n  root: imgs\n  colour: true\n")
    with pytest.raises(ConfigError, match=r"vision\.yaml: data\.colour"):
        load_vision_config(path)
    path.write_text("data:\n  root: imgs\ntargets: [esp8266]\n")
    with pytest.raises(ConfigError, match="esp8266"):
        load_vision_config(path)
    path.write_text("data:\n  root: imgs\n")
    assert load_vision_config(path).data.root == (tmp_path / "imgs").resolve()


def test_stratified_split_keeps_class_balance_and_disjoint_parts() -> None:
    y = np.array([0] * 50 + [1] * 30)
    train, val, test = stratified_split(y, 0.2, 0.2, seed=3)
    assert len(set(train) | set(val) | set(test)) == 80
    assert not (set(train) & set(test)) and not (set(val) & set(test))
    assert (y[test] == 1).sum() == 6 and (y[test] == 0).sum() == 10


def test_metrics_at_threshold() -> None:
    y = np.array([0, 0, 1, 1, 1])
    prob = np.array([0.1, 0.7, 0.9, 0.65, 0.2])
    metrics = classification_metrics(y, prob, threshold=0.6)
    assert metrics["confusion_matrix"] == [[1, 1], [1, 2]]
    assert metrics["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert metrics["recall"] == pytest.approx(2 / 3, abs=1e-4)


def test_shipped_config_is_valid() -> None:
    path = Path(__file__).resolve().parents[3] / "configs" / "person-tiny.yaml"
    config = load_vision_config(path)
    assert config.data.image_size == (96, 96) and config.model_id == "person-tiny"
