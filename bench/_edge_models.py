"""Models for the device-runtime benchmarks (not a benchmark: the leading underscore hides it).

A benchmark takes `--model DIR` (e.g. from `edgefleet model train configs/synthetic.yaml --out DIR`).
Without one it builds a small int8 autoencoder with the test suite's builder (tests/edge/modelkit.py,
TensorFlow), trained on synthetic normal windows, and caches it under `.edgefleet/bench-models/`.
"""

import contextlib
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType

import numpy as np

from edgefleet import dsp

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]
SPECTRAL_BANDS = ((2.0, 10.0), (10.0, 20.0), (20.0, 35.0), (35.0, 50.0), (50.0, 70.0), (70.0, 100.0))


def _modelkit() -> ModuleType:
    path = REPO / "tests/edge/modelkit.py"
    spec = importlib.util.spec_from_file_location("edgefleet_bench_modelkit", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load the model builder {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def synth_windows(
    n: int,
    *,
    seed: int,
    speed: float = 1.0,
    gain: tuple[float, ...] | None = None,
    fault: str = "normal",
    severity: float = 1.0,
) -> np.ndarray:
    synth = dsp.VibrationSynth(seed=seed)
    if speed != 1.0:
        synth.schedule_speed(0.0, speed)
    if gain is not None:
        synth.schedule_gain(0.0, gain)
    if fault != "normal":
        synth.set_fault(fault, severity)
    return dsp.frame(synth.read(n * 128).samples.astype(np.float64), 128, 128).copy()


def _tflm_scores(directory: Path, features: np.ndarray) -> np.ndarray:
    from edgefleet.edge.backends import create_backend
    from edgefleet.edge.commissioning import Baseline
    from edgefleet.edge.model import load_model_dir
    from edgefleet.edge.pipeline import Scorer

    bundle = load_model_dir(directory)
    fs = bundle.card.feature_spec
    assert fs is not None
    scorer = Scorer(bundle.card, create_backend("tflm", bundle))
    return scorer.score(features, Baseline(np.asarray(fs.mean), np.asarray(fs.std), 1.0, False))[0]


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """TensorFlow's converter prints to stdout (fd 1); a benchmark's stdout is for its JSON only."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def bench_model(kind: str, options: Mapping[str, str]) -> tuple[Path, str]:
    """(model directory, where it came from). `kind`: `stats` (the seed's 18 features) or `spectral`."""
    if options.get("model"):
        return Path(options["model"]), "given (--model)"
    directory = Path(options.get("cache", str(Path(".edgefleet/bench-models")))) / kind
    if (directory / "model_card.json").exists():
        return directory, f"cached test-built model ({directory})"
    log.warning("building a %s test model with TensorFlow into %s (no --model given)", kind, directory)
    sets = ("stats",) if kind == "stats" else ("spectral",)
    bands = () if kind == "stats" else SPECTRAL_BANDS
    cfg = dsp.FeatureConfig.from_spec(200.0, tuple(dsp.AXES), sets, bands)
    windows = np.concatenate([synth_windows(300, seed=seed) for seed in range(11, 17)])
    features = dsp.extract(windows, cfg).astype(np.float64)
    with stdout_to_stderr():
        _modelkit().build_model_dir(
            directory,
            features,
            _tflm_scores,
            names=dsp.feature_names(cfg),
            sets=sets,
            bands_hz=bands,
            epochs=60,
        )
    return directory, f"test-built model ({directory})"
