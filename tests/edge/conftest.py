"""Fixtures for the device runtime: a small int8 autoencoder trained on synthetic normal vibration."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgefleet import dsp
from edgefleet.edge.backends import create_backend
from edgefleet.edge.commissioning import Baseline
from edgefleet.edge.model import load_model_dir
from edgefleet.edge.pipeline import Scorer
from tests.edge.modelkit import build_model_dir

WINDOW = 128


def synth_windows(n: int, seed: int = 0, **machine: float) -> np.ndarray:
    synth = dsp.VibrationSynth(dsp.MachineConfig(**machine), seed=seed)  # type: ignore[arg-type]
    return dsp.frame(synth.read(n * WINDOW).samples.astype(np.float64), WINDOW, WINDOW).copy()


def _tflm_scores(directory: Path, features: np.ndarray) -> np.ndarray:
    bundle = load_model_dir(directory)
    scorer = Scorer(bundle.card, create_backend("tflm", bundle))
    fs = bundle.card.feature_spec
    assert fs is not None
    return scorer.score(features, Baseline(np.asarray(fs.mean), np.asarray(fs.std), 1.0, False))[0]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """model.tflite + model_card.json, trained on 6 x 300 normal windows of synthetic machines."""
    windows = np.concatenate([synth_windows(300, seed=seed) for seed in range(11, 17)])
    cfg = dsp.FeatureConfig.from_spec(200.0, tuple(dsp.AXES), ("stats",))
    features = dsp.extract(windows, cfg).astype(np.float64)
    directory = tmp_path_factory.mktemp("model") / "ae"
    yield build_model_dir(directory, features, _tflm_scores, epochs=40)
