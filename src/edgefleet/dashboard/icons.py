"""The app's icons, drawn in code: a white vibration trace on the brand blue, as PNG bytes.

Drawn with numpy (distance fields, anti-aliased) and written as PNG with zlib, so the server needs
no imaging library and the repository no binary files. `any` icons have a rounded square on a
transparent background; `maskable` ones fill the square and keep the trace inside the central
safe zone (the inner 80 %), which platforms crop to a circle or squircle."""

import itertools
import struct
import zlib
from functools import cache
from typing import Literal

import numpy as np
from numpy.typing import NDArray

BRAND = (30, 64, 175)  # #1e40af, the dashboard's primary colour
TRACE = (255, 255, 255)
SIZES = (192, 512)
Purpose = Literal["any", "maskable"]

# A damped vibration burst between two flat stretches, in a unit square (x right, y down).
_TRACE = np.array(
    [
        (0.10, 0.55), (0.30, 0.55), (0.37, 0.30), (0.45, 0.78), (0.52, 0.22),
        (0.59, 0.70), (0.65, 0.42), (0.70, 0.55), (0.90, 0.55),
    ]
)  # fmt: skip


Grid = NDArray[np.float64]


def _segment_distance(px: Grid, py: Grid, points: Grid) -> Grid:
    """Distance from every pixel to the nearest segment of the polyline."""
    best = np.full(px.shape, np.inf)
    for (ax, ay), (bx, by) in itertools.pairwise(points):
        dx, dy = bx - ax, by - ay
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        best = np.minimum(best, np.hypot(px - (ax + t * dx), py - (ay + t * dy)))
    return best


def _rounded_square(px: Grid, py: Grid, radius: float) -> Grid:
    """Signed distance to a unit square with rounded corners (negative inside)."""
    qx = np.abs(px - 0.5) - (0.5 - radius)
    qy = np.abs(py - 0.5) - (0.5 - radius)
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0) - radius


def render(size: int, purpose: Purpose = "any") -> NDArray[np.uint8]:
    """The icon as an RGBA array of `size` x `size`."""
    centres = (np.arange(size) + 0.5) / size
    px, py = np.meshgrid(centres, centres)
    pixel = 1.0 / size
    if purpose == "maskable":
        background = np.ones((size, size))
        points = 0.5 + (_TRACE - 0.5) * 0.7  # inside the safe zone
        width = 0.045
    else:
        background = np.clip(0.5 - _rounded_square(px, py, 0.18) / pixel, 0.0, 1.0)
        points, width = _TRACE, 0.06
    trace = np.clip(0.5 - (_segment_distance(px, py, points) - width / 2) / pixel, 0.0, 1.0) * background
    rgba = np.zeros((size, size, 4))
    for channel in range(3):
        rgba[..., channel] = BRAND[channel] * (1 - trace) + TRACE[channel] * trace
    rgba[..., 3] = 255 * background
    return np.round(rgba).astype(np.uint8)


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png(rgba: NDArray[np.uint8]) -> bytes:
    """An 8-bit RGBA PNG of the array (every row with filter type 0)."""
    height, width, _ = rgba.shape
    rows = np.hstack([np.zeros((height, 1), np.uint8), rgba.reshape(height, width * 4)])
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
        + _chunk(b"IEND", b"")
    )


@cache
def icon_png(size: int, purpose: Purpose = "any") -> bytes:
    """PNG bytes of one icon, drawn once per process."""
    if size not in SIZES:
        raise ValueError(f"no {size} px icon; sizes are {SIZES}")
    return png(render(size, purpose))
