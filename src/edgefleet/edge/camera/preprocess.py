"""Camera model input: the shared `dsp.image` conversion, and the check that a model expects it."""

import numpy as np

from edgefleet.contracts import TensorSpec
from edgefleet.dsp.image import frame_to_int8
from edgefleet.edge.errors import ModelLoadError


def check_camera_model_input(spec: TensorSpec) -> tuple[int, int]:
    """(height, width) of an int8 [1, H, W, 1] input that takes pixels as `p - 128` (dsp.image)."""
    if spec.dtype != "int8" or len(spec.shape) != 4 or spec.shape[0] != 1 or spec.shape[3] != 1:
        raise ModelLoadError(
            f"a camera model needs an int8 [1, H, W, 1] input, got {spec.dtype} {spec.shape}"
        )
    quant = spec.quantization
    if quant is None or abs(quant.scale * 128 - 1) > 0.01 or abs(quant.zero_point) > 1:
        raise ModelLoadError(
            "a camera model must take pixels as int8 `p - 128` (input scale ~1/128, zero point ~0); "
            f"this one has {quant}"
        )
    return spec.shape[1], spec.shape[2]


def frame_to_input(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    return frame_to_int8(frame, height, width)
