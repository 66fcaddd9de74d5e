from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgefleet.edge.backends.tflm import TflmBackend
from edgefleet.edge.camera import PersonModel
from edgefleet.edge.model import load_model_dir


@pytest.fixture(scope="session")
def person_model_dir(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The TFLM reference model pulled from the shared copy (never downloaded in tests)."""
    from edgefleet.ml.pretrained import pull

    source = shared / "models/person_detect/person_detect.tflite"
    return pull("person-detect", tmp_path_factory.mktemp("models"), from_path=source)


@pytest.fixture(scope="session")
def person_model(person_model_dir: Path) -> PersonModel:
    bundle = load_model_dir(person_model_dir)
    return PersonModel(bundle, TflmBackend(bundle))


def bmp_pixels(shared: Path, name: str) -> np.ndarray:
    """True uint8 pixels of the shared test images (person.bmp stores int8 bytes; see its README)."""
    raw = np.asarray(Image.open(shared / f"models/person_detect/{name}.bmp"))
    return raw ^ 0x80 if name == "person" else raw


@pytest.fixture(scope="session")
def person_frame(shared: Path) -> np.ndarray:
    return bmp_pixels(shared, "person")


@pytest.fixture(scope="session")
def no_person_frame(shared: Path) -> np.ndarray:
    return bmp_pixels(shared, "no_person")
