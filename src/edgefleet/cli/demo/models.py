"""The demo's models: the vibration autoencoder (trained once, cached by config sha256) and, when a
local copy exists, the TFLM person-detection model for the camera nodes."""

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgefleet.cli.demo.options import DemoError
from edgefleet.edge.errors import EdgeError
from edgefleet.edge.model import ModelBundle, load_model_dir
from edgefleet.ml import MlError, TrainConfig, load_config

log = logging.getLogger(__name__)
SHIPPED_CONFIG = Path(__file__).with_name("synthetic.yaml")
PERSON_MODEL = "person-detect"
SHARED_PERSON_MODEL = Path("models/person_detect/person_detect.tflite")
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class ModelPlan:
    """Which vibration model the demo runs and where its cached artifacts live."""

    config_path: Path
    config: TrainConfig
    sha256: str
    directory: Path
    variables: dict[str, str]


def plan_vibration_model(models_dir: Path, home: Path, shared: Path, config: Path | None) -> ModelPlan:
    """Read the config; its sha256 names the cache, so a changed config trains a new model."""
    path = config or SHIPPED_CONFIG
    try:
        cfg, sha = load_config(path)
    except MlError as err:
        raise DemoError(str(err)) from err
    return ModelPlan(
        config_path=path,
        config=cfg,
        sha256=sha,
        directory=models_dir / f"vibration-{sha[:16]}",
        variables={"home": str(home), "shared": str(shared)},
    )


def cached_model(plan: ModelPlan) -> ModelBundle | None:
    if not plan.directory.is_dir():
        return None
    try:
        return load_model_dir(plan.directory)
    except EdgeError as err:
        log.warning("the cached model %s is unusable (%s); training again", plan.directory, err)
        return None


def train_model(plan: ModelPlan, progress: Progress | None = None) -> tuple[ModelBundle, float]:
    """Train with the real pipeline into a scratch directory, then move it into place: an interrupted
    run leaves no half-written cache behind. Returns the model and the seconds it took."""
    from edgefleet.ml.pipeline import train  # imports TensorFlow: only when there is training to do

    started = time.monotonic()
    plan.directory.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".training-", dir=plan.directory.parent))
    try:
        train(
            plan.config,
            scratch,
            variables=plan.variables,
            config_sha256=plan.sha256,
            progress=progress,
        )
        shutil.rmtree(plan.directory, ignore_errors=True)
        scratch.replace(plan.directory)
    except MlError as err:
        raise DemoError(f"training the demo model failed: {err}") from err
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    try:
        bundle = load_model_dir(plan.directory)
    except EdgeError as err:
        raise DemoError(f"the model just trained cannot be loaded: {err}") from err
    return bundle, time.monotonic() - started


def person_model_dir(pull_cache: Path, models_dir: Path, shared: Path) -> tuple[Path | None, str]:
    """The person-detection model if it is here already (no download): `edgefleet model pull`'s cache,
    the demo's own copy, or the shared reference copy (sha256-checked on the way in).
    Returns the directory (or None) and a note saying where it came from or why there is none."""
    for directory in (pull_cache / PERSON_MODEL, models_dir / PERSON_MODEL):
        try:
            load_model_dir(directory)
        except EdgeError:
            continue
        return directory, f"person-detection model from {directory}"
    source = shared / SHARED_PERSON_MODEL
    if not source.is_file():
        return None, (
            "no person-detection model here, so no camera nodes: run "
            "`edgefleet model pull person-detect` (or set EDGEFLEET_SHARED) to add two"
        )
    from edgefleet.ml.pretrained import pull

    try:
        directory = pull(PERSON_MODEL, models_dir, from_path=source)
    except MlError as err:
        return None, f"the person-detection model at {source} is unusable ({err}), so no camera nodes"
    return directory, f"person-detection model from {source}"
