"""A generated person / no-person image set for tests and quick trials (not a substitute for photos).

"person": a standing figure (head, torso, legs) in a random place, size and shade on a textured
background; "no_person": the same kind of background with rectangles and discs. Seeded.
"""

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from edgefleet.ml.vision.config import LABELS


def _background(rng: np.random.Generator, size: int) -> NDArray[np.float64]:
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(60, 190)
    gradient = rng.uniform(-50, 50) * xx + rng.uniform(-50, 50) * yy
    noise = rng.normal(0, rng.uniform(3, 12), (size, size))
    return np.asarray(base + gradient + noise, dtype=np.float64)


def _ellipse(
    canvas: NDArray[np.float64], center: tuple[float, float], radii: tuple[float, float], shade: float
) -> None:
    (cy, cx), (ry, rx) = center, radii
    yy, xx = np.mgrid[0 : canvas.shape[0], 0 : canvas.shape[1]]
    canvas[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = shade


def _person(rng: np.random.Generator, canvas: NDArray[np.float64]) -> None:
    size = canvas.shape[0]
    height = rng.uniform(0.45, 0.9) * size
    cx = rng.uniform(0.3, 0.7) * size
    top = rng.uniform(0.02, 1 - height / size - 0.02) * size
    shade = rng.choice([rng.uniform(10, 50), rng.uniform(200, 245)])
    head = height * 0.12
    _ellipse(canvas, (top + head, cx), (head, head * 0.85), shade)
    _ellipse(canvas, (top + height * 0.45, cx), (height * 0.22, height * 0.13), shade)
    for side in (-1, 1):
        _ellipse(
            canvas, (top + height * 0.78, cx + side * height * 0.06), (height * 0.2, height * 0.045), shade
        )
        _ellipse(
            canvas, (top + height * 0.45, cx + side * height * 0.16), (height * 0.18, height * 0.035), shade
        )


def _clutter(rng: np.random.Generator, canvas: NDArray[np.float64]) -> None:
    size = canvas.shape[0]
    for _ in range(rng.integers(1, 4)):
        shade = rng.uniform(10, 245)
        if rng.random() < 0.5:
            y0, x0 = rng.integers(0, size - 10, 2)
            h, w = rng.integers(8, size // 2, 2)
            canvas[y0 : y0 + h, x0 : x0 + w] = shade
        else:
            r = rng.uniform(5, size / 4)
            _ellipse(canvas, (rng.uniform(0, size), rng.uniform(0, size)), (r, r), shade)


def make_image(label: str, rng: np.random.Generator, size: int = 96) -> NDArray[np.uint8]:
    canvas = _background(rng, size)
    (_person if label == "person" else _clutter)(rng, canvas)
    return np.clip(canvas + rng.normal(0, 4, canvas.shape), 0, 255).astype(np.uint8)


def write_dataset(root: Path, per_class: int, seed: int = 0, size: int = 96) -> Path:
    """Write `root/person/*.png` and `root/no_person/*.png`."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label in LABELS:
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(make_image(label, rng, size)).save(folder / f"{label}_{i:04d}.png")
    return root
