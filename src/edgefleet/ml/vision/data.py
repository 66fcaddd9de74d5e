"""A folder-per-class image dataset, converted exactly as the camera node converts frames."""

import logging
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from edgefleet.dsp.image import IMAGE_SUFFIXES, frame_to_float
from edgefleet.ml.errors import DatasetError
from edgefleet.ml.vision.config import LABELS, VisionData

log = logging.getLogger(__name__)


@dataclass
class ImageSet:
    x: NDArray[np.float32]  # (n, h, w, 1), real-valued model input in [-1, 1)
    y: NDArray[np.int64]  # index into LABELS
    rejected: list[str] = field(default_factory=list)

    def per_class(self) -> dict[str, int]:
        return {label: int((self.y == i).sum()) for i, label in enumerate(LABELS)}


def load_images(config: VisionData) -> ImageSet:
    from PIL import Image, UnidentifiedImageError

    height, width = config.image_size
    xs: list[NDArray[np.float32]] = []
    ys: list[int] = []
    rejected: list[str] = []
    for index, label in enumerate(LABELS):
        folder = config.root / label
        if not folder.is_dir():
            raise DatasetError(f"{config.root}: missing class folder {label}/ (need {' and '.join(LABELS)})")
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in paths:
            try:
                with Image.open(path) as image:
                    frame = np.asarray(image.convert("L"))
            except (OSError, UnidentifiedImageError) as err:
                rejected.append(f"{path}: {err}")
                log.warning("skipping unreadable image %s: %s", path, err)
                continue
            xs.append(frame_to_float(frame, height, width)[..., None])
            ys.append(index)
        count = ys.count(index)
        if count < config.min_images_per_class:
            raise DatasetError(
                f"{folder}: {count} usable images; need at least {config.min_images_per_class}"
            )
    return ImageSet(np.stack(xs).astype(np.float32), np.array(ys, dtype=np.int64), rejected)


def stratified_split(
    y: NDArray[np.int64], validation: float, test: float, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Index arrays (train, validation, test), each class split in the same proportions."""
    rng = np.random.default_rng(seed)
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    for label in np.unique(y):
        index = rng.permutation(np.flatnonzero(y == label))
        n_test = max(1, round(len(index) * test))
        n_val = max(1, round(len(index) * validation))
        parts[2].extend(index[:n_test])
        parts[1].extend(index[n_test : n_test + n_val])
        parts[0].extend(index[n_test + n_val :])
    train, val, test_idx = (np.sort(np.array(p, dtype=np.int64)) for p in parts)
    return train, val, test_idx
