"""Compact raw windows for the wire: int16 with one scale per axis (`contracts.WindowSample`).

Devices pack the windows they upload for retraining; the model factory unpacks them. Each axis is
scaled by its own peak, so the quantization step is peak / 32767 (0.003% of the peak): far below
the sensor's own resolution (an MPU6050 at +-2 g has 16-bit LSBs over the whole range).
"""

import base64
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

INT16_MAX = 32767
ENCODING = "int16le"


def pack_int16(window: NDArray[np.floating]) -> tuple[list[float], bytes]:
    """(scale per axis, little-endian int16 bytes, sample-major) of a (length, axes) window."""
    x = np.asarray(window, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"expected a (length, axes) window, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("cannot pack a window with NaN or infinite values")
    peak = np.max(np.abs(x), axis=0)
    scale = np.where(peak > 0, peak / INT16_MAX, 1.0)
    q = np.clip(np.rint(x / scale), -INT16_MAX, INT16_MAX).astype("<i2")
    return [float(s) for s in scale], q.tobytes()


def unpack_int16(data: bytes, scale: Sequence[float], length: int) -> NDArray[np.float64]:
    """The (length, axes) float64 window of `pack_int16`'s output."""
    axes = len(scale)
    if len(data) != length * axes * 2:
        raise ValueError(f"{len(data)} bytes do not hold {length} x {axes} int16 values")
    q = np.frombuffer(data, dtype="<i2").reshape(length, axes)
    return q.astype(np.float64) * np.asarray(scale, dtype=np.float64)


def pack_base64(window: NDArray[np.floating]) -> tuple[list[float], str]:
    scale, data = pack_int16(window)
    return scale, base64.b64encode(data).decode("ascii")


def unpack_base64(data: str, scale: Sequence[float], length: int) -> NDArray[np.float64]:
    return unpack_int16(base64.b64decode(data, validate=True), scale, length)
