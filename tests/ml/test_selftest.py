"""Self-test vectors from the TFLM interpreter: deterministic, near the training distribution,
reproduced by LiteRT within their tolerance, and telling another model apart."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgefleet.contracts import load_model_card
from edgefleet.ml import ExportError
from edgefleet.ml.runtime import LiteRtModel
from edgefleet.ml.selftest import load_self_test, make_self_test, write_self_test
from tests.edge.modelkit import build_model_dir

N_FEATURES = 8


def _features(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale, offset = np.arange(1, N_FEATURES + 1), np.arange(N_FEATURES)
    return rng.normal(size=(400, N_FEATURES)) * scale + offset


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two small int8 autoencoders trained on the same data with different seeds."""
    root = tmp_path_factory.mktemp("selftest")
    names = [f"f{i}" for i in range(N_FEATURES)]
    a, b = (
        build_model_dir(root / name, _features(0), names=names, hidden=(6, 4, 6), epochs=15, seed=seed)
        for name, seed in (("a", 0), ("b", 1))
    )
    return a, b


def test_cases_are_deterministic_and_seeded(models: tuple[Path, Path]) -> None:
    first = make_self_test(models[0])
    assert len(first) == 4 and make_self_test(models[0]) == first
    assert make_self_test(models[0], seed=1) != first
    assert make_self_test(models[0], n_cases=8)[:1] == first[:1]  # the training mean comes first
    assert all(case.tolerance == 1 for case in first)
    assert {len(c.input_int8) for c in first} == {len(c.expected_int8) for c in first} == {N_FEATURES}


def test_inputs_are_standardized_features_near_the_training_distribution(models: tuple[Path, Path]) -> None:
    card = load_model_card(models[0] / "model_card.json")
    q = card.input.quantization
    assert q is not None
    cases = make_self_test(models[0], n_cases=8)
    x = np.array([c.input_int8 for c in cases], dtype=np.float64)
    z = q.scale * (x - q.zero_point)
    assert np.all(x[0] == q.zero_point)  # z = 0: the mean
    assert np.abs(z).max() <= 3.0 + q.scale
    assert 0.5 < z[1:].std() < 1.5  # like standardized training features, not int8 noise
    assert np.mean(np.abs(x) >= 127) < 0.05  # hardly anything saturates


def test_litert_reproduces_the_expected_outputs_within_tolerance(models: tuple[Path, Path]) -> None:
    cases = make_self_test(models[0], n_cases=8)
    lite = LiteRtModel((models[0] / "model.tflite").read_bytes())
    got = lite.run(np.array([c.input_int8 for c in cases], dtype=np.int8))
    expected = np.array([c.expected_int8 for c in cases])
    assert np.abs(got.astype(int) - expected).max() <= 1


def test_another_model_fails_the_cases(models: tuple[Path, Path]) -> None:
    cases = make_self_test(models[0])
    other = LiteRtModel((models[1] / "model.tflite").read_bytes())
    got = other.run(np.array([c.input_int8 for c in cases], dtype=np.int8))
    assert np.abs(got.astype(int) - np.array([c.expected_int8 for c in cases])).max() > 1


def test_write_and_load_round_trip(models: tuple[Path, Path], tmp_path: Path) -> None:
    directory = tmp_path / "m"
    shutil.copytree(models[0], directory)
    cases = make_self_test(directory)
    path = write_self_test(directory, cases)
    assert path == directory / "self_test.json"
    raw = json.loads(path.read_text())
    assert isinstance(raw, list) and set(raw[0]) == {"input_int8", "expected_int8", "tolerance"}
    assert load_self_test(path) == cases


def test_bad_model_directories_are_export_errors(models: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="n_cases"):
        make_self_test(models[0], n_cases=9)
    with pytest.raises(ExportError, match=r"model_card\.json"):
        make_self_test(tmp_path)
    directory = tmp_path / "float"
    shutil.copytree(models[0], directory)
    card = json.loads((directory / "model_card.json").read_text())
    card["input"]["dtype"] = "float32"
    (directory / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ExportError, match="int8 input and output"):
        make_self_test(directory)
    (directory / "self_test.json").write_text('{"not": "a list"}')
    with pytest.raises(ExportError, match="JSON list"):
        load_self_test(directory / "self_test.json")
