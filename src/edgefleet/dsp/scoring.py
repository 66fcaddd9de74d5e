"""The anomaly score, exactly as a device computes it from a model card (pure numpy).

For one window `w[window, axes]` and a model card `card`:

    x  = extract(w, FeatureConfig.from_spec(fs.sample_rate_hz, card.sensor.axes, fs.sets, fs.bands_hz))
    z  = standardize(x, fs.mean, fs.std)                      # (x - mean) / std, float32
    qi = quantize(z, qin.scale, qin.zero_point)               # qin = card.input.quantization; int8
    qo = <run the int8 model on qi>                           # int8 [n_features]
    y  = dequantize(qo, qout.scale, qout.zero_point)          # qout = card.output.quantization
    score = reconstruction_score(z, y)                        # mean((y - z)^2) over features
    anomaly = score > card.threshold.value

The reconstruction is compared with the *unquantized* standardized features `z`. The float model
(`model_float.tflite`) takes `z` and returns `y` directly. `score_stats` in the card describe this
score on held-out normal data.
"""

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

INT8_MIN = -128
INT8_MAX = 127


def standardize(
    features: ArrayLike,
    mean: Sequence[float] | NDArray[np.floating],
    std: Sequence[float] | NDArray[np.floating],
) -> NDArray[np.float32]:
    """`(features - mean) / std` in float32 (features `[..., n_features]`)."""
    x = np.asarray(features, dtype=np.float32)
    return ((x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)).astype(np.float32)


def quantize(x: ArrayLike, scale: float, zero_point: int) -> NDArray[np.int8]:
    """Affine int8 quantization as TFLite does it: round half away from zero, then clip."""
    v = np.asarray(x, dtype=np.float64) / scale
    rounded = np.sign(v) * np.floor(np.abs(v) + 0.5)
    out: NDArray[np.int8] = np.clip(rounded + zero_point, INT8_MIN, INT8_MAX).astype(np.int8)
    return out


def dequantize(q: ArrayLike, scale: float, zero_point: int) -> NDArray[np.float32]:
    """`scale * (q - zero_point)` in float32."""
    out: NDArray[np.float32] = (scale * (np.asarray(q, dtype=np.float32) - np.float32(zero_point))).astype(
        np.float32
    )
    return out


def reconstruction_score(z: ArrayLike, y: ArrayLike) -> NDArray[np.float32]:
    """Mean squared error over the last axis between standardized features `z` and reconstruction `y`."""
    diff = np.asarray(y, dtype=np.float32) - np.asarray(z, dtype=np.float32)
    return np.asarray(np.mean(diff * diff, axis=-1, dtype=np.float32), dtype=np.float32)
