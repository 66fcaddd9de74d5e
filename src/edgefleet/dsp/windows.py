"""Cutting a continuous stream of samples into (overlapping) windows."""

import numpy as np
from numpy.typing import NDArray

from edgefleet.dsp.errors import FeatureError


def window_count(n_samples: int, window: int, hop: int) -> int:
    """How many full windows `frame` cuts from `n_samples` samples."""
    if window < 1 or hop < 1:
        raise FeatureError(f"window ({window}) and hop ({hop}) must be >= 1")
    return 0 if n_samples < window else (n_samples - window) // hop + 1


def frame(samples: NDArray[np.floating], window: int, hop: int) -> NDArray[np.floating]:
    """`samples[n, axes]` -> `windows[count, window, axes]` (window i starts at sample i*hop).

    Incomplete tails are left out. The result is a copy (safe to modify).
    """
    if samples.ndim != 2:
        raise FeatureError(f"samples must be 2-D [n, axes], got shape {samples.shape}")
    count = window_count(samples.shape[0], window, hop)
    if count == 0:
        return np.empty((0, window, samples.shape[1]), dtype=samples.dtype)
    view = np.lib.stride_tricks.sliding_window_view(samples, window, axis=0)  # [n-w+1, axes, w]
    return np.ascontiguousarray(view[: (count - 1) * hop + 1 : hop].transpose(0, 2, 1))


def overlap_factor(window: int, hop: int) -> int:
    """How many consecutive windows one short event lands in (1 without overlap)."""
    if window < 1 or hop < 1:
        raise FeatureError(f"window ({window}) and hop ({hop}) must be >= 1")
    return max(1, -(-window // hop))


def debounce_in_hops(k: int, n: int, m: int, window: int, hop: int) -> tuple[int, int, int]:
    """A k-of-n (raise) / m (clear) debounce counted in window lengths, converted to hops.

    With overlapping windows a single knock shorter than a window is seen by `r = window / hop`
    consecutive windows: counted in hops, a 3-of-5 debounce would alarm on it. Counted in window
    lengths, k windows of evidence need (k - 1) * r + 1 anomalous hops among n * r, and clearing
    needs m * r normal hops: the same time to raise and clear as without overlap, and a single
    short event no longer raises (it fills r < (k - 1) * r + 1 hops for any k >= 2).
    """
    r = overlap_factor(window, hop)
    return (k - 1) * r + 1, n * r, m * r
