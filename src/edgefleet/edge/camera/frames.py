"""Frame sources for the camera node: a folder of images, a video file, or frames given in code."""

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from edgefleet.dsp.image import IMAGE_SUFFIXES
from edgefleet.edge.errors import SourceError

log = logging.getLogger(__name__)


class FrameSource(Protocol):
    """Yields frames as uint8 arrays, (H, W) grayscale or (H, W, 3) RGB; `fps` paces a live node."""

    fps: float
    skipped: int

    def frames(self) -> Iterator[np.ndarray]: ...


def _check_fps(fps: float) -> float:
    if not 0 < fps <= 120:
        raise SourceError(f"frame rate must be in (0, 120] frames/s, got {fps}")
    return fps


class FolderSource:
    """Images in name order; unreadable files are skipped, logged and counted in `skipped`."""

    def __init__(self, folder: Path, fps: float = 1.0, loop: bool = False) -> None:
        self.folder = Path(folder)
        self.fps = _check_fps(fps)
        self.loop = loop
        self.skipped = 0
        if not self.folder.is_dir():
            raise SourceError(f"frame folder {self.folder} does not exist")
        self.paths = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise SourceError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {self.folder}")

    def frames(self) -> Iterator[np.ndarray]:
        from PIL import Image, UnidentifiedImageError

        while True:
            for path in self.paths:
                try:
                    with Image.open(path) as image:
                        yield np.asarray(image.convert("RGB") if image.mode not in ("L", "RGB") else image)
                except (OSError, UnidentifiedImageError) as err:
                    self.skipped += 1
                    log.warning("skipping unreadable image %s: %s", path, err)
            if not self.loop:
                return


class VideoSource:
    """A video file decoded with FFmpeg (PyAV), sampled at `fps` by presentation time."""

    def __init__(self, path: Path, fps: float = 2.0) -> None:
        self.path = Path(path)
        self.fps = _check_fps(fps)
        self.skipped = 0
        if not self.path.is_file():
            raise SourceError(f"video file {self.path} does not exist")

    def frames(self) -> Iterator[np.ndarray]:
        import av

        try:
            container = av.open(str(self.path))
        except av.FFmpegError as err:
            raise SourceError(f"cannot open video {self.path}: {err}") from err
        with container:
            next_time = 0.0
            try:
                for frame in container.decode(video=0):
                    t = float(frame.time) if frame.time is not None else next_time
                    if t + 1e-9 < next_time:
                        continue
                    next_time += 1.0 / self.fps
                    yield frame.to_ndarray(format="gray")
            except av.FFmpegError as err:
                raise SourceError(f"{self.path}: video decoding failed: {err}") from err


class ListSource:
    """Frames given in code (tests, synthetic scenes), optionally repeated."""

    def __init__(self, frames: Iterable[np.ndarray], fps: float = 10.0, repeat: int = 1) -> None:
        self._frames = list(frames)
        self.fps = _check_fps(fps)
        self.repeat = repeat
        self.skipped = 0

    def frames(self) -> Iterator[np.ndarray]:
        for _ in range(self.repeat):
            yield from self._frames


def synthetic_frames(count: int, size: tuple[int, int] = (120, 160), seed: int = 0) -> list[np.ndarray]:
    """Smooth random scenes (no people), reproducible by seed."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for _ in range(count):
        fx, fy = rng.uniform(0.01, 0.08, 2)
        phase = rng.uniform(0, 2 * np.pi)
        scene = 128 + 60 * np.sin(fx * xx + phase) * np.cos(fy * yy) + rng.normal(0, 6, (h, w))
        frames.append(np.clip(scene, 0, 255).astype(np.uint8))
    return frames
