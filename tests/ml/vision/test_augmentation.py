"""Training-time augmentation keeps the float model's input range: dark pixels stay dark."""

import numpy as np

from edgefleet.ml.vision.config import Augmentation
from edgefleet.ml.vision.model import INPUT_RANGE, augmentation


def test_augmentation_keeps_negative_pixels_and_the_input_range() -> None:
    # Keras 3's RandomContrast clips to (0, 255) unless told otherwise: every pixel below 0 became 0
    images = np.full((8, 32, 32, 1), -0.8, dtype=np.float32)
    images[:, 8:24, 8:24, :] = 0.6
    steps = augmentation(Augmentation(flip=False, shift=0, zoom=0, brightness=0.1, contrast=0.3), seed=3)
    out = np.asarray(steps(images, training=True))
    low, high = INPUT_RANGE
    assert out.min() >= low and out.max() <= high
    assert (out < -0.5).mean() > 0.5  # the dark background survives
    assert np.abs(out - images).max() > 0.01  # and augmentation did change something
