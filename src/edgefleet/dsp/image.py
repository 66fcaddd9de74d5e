"""Camera frames to int8 model input, shared by vision training and the camera node.

grayscale (ITU-R BT.601 luma, as the camera's grayscale mode) -> centre crop to the input's
aspect ratio -> bilinear resize (Pillow) -> int8 by `pixel - 128` (the byte XOR 0x80 of the
TFLite Micro person_detection example). The real-valued model input is therefore
`(pixel - 128) / 128`, in [-1, 1).
"""

import numpy as np
from numpy.typing import NDArray

from edgefleet.dsp.errors import ImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".gif", ".webp", ".tif", ".tiff")
"""Image files that frame folders (camera node) and image datasets (vision training) read."""
# BT.601 luma weights in float32, as the firmware's product tables hold them (ef_image.c).
_R, _G, _B = np.float32(0.299), np.float32(0.587), np.float32(0.114)


def to_gray(frame: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """(H, W) or (H, W, 3|4) RGB(A) -> (H, W) uint8 luma, `(r * 0.299 + g * 0.587) + b * 0.114` in
    float32, rounded half to even. Elementwise products and sums in that order: every operation is
    rounded on its own, so no BLAS kernel (which may fuse a multiply with an add) decides the result,
    and the firmware computes the same bits."""
    if frame.ndim == 2:
        return np.asarray(frame, dtype=np.uint8)
    if frame.ndim == 3 and frame.shape[2] in (3, 4):
        rgb = frame[..., :3].astype(np.float32)
        luma: NDArray[np.float32] = rgb[..., 0] * _R + rgb[..., 1] * _G + rgb[..., 2] * _B
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    raise ImageError(f"a frame must be (H, W) or (H, W, 3|4), got shape {frame.shape}")


def crop_resize(gray: NDArray[np.uint8], height: int, width: int) -> NDArray[np.uint8]:
    """Centre crop to the target aspect ratio, then bilinear resize; a no-op at the right size."""
    from PIL import Image

    h, w = gray.shape
    if h < 1 or w < 1:
        raise ImageError(f"a frame of {w}x{h} pixels has nothing to resize")
    if height < 1 or width < 1:
        raise ImageError(f"cannot resize to {width}x{height} pixels")
    if (h, w) == (height, width):
        return gray
    target = width / height
    if w / h > target:
        new_w = round(h * target)
        x0 = (w - new_w) // 2
        gray = gray[:, x0 : x0 + new_w]
    else:
        new_h = round(w / target)
        y0 = (h - new_h) // 2
        gray = gray[y0 : y0 + new_h, :]
    if gray.size == 0:  # the firmware's EF_IMAGE_ECROP
        raise ImageError(
            f"the centre crop of a {w}x{h} frame to the aspect ratio of {width}x{height} is empty"
        )
    return np.asarray(Image.fromarray(gray).resize((width, height), Image.Resampling.BILINEAR))


def pixels_to_int8(gray: NDArray[np.uint8]) -> NDArray[np.int8]:
    return (gray.astype(np.int16) - 128).astype(np.int8)


def frame_to_int8(frame: NDArray[np.uint8], height: int, width: int) -> NDArray[np.int8]:
    """What the device feeds the model: (height, width) int8."""
    return pixels_to_int8(crop_resize(to_gray(frame), height, width))


def frame_to_float(frame: NDArray[np.uint8], height: int, width: int) -> NDArray[np.float32]:
    """The same input as real values, `(pixel - 128) / 128`, for training the float model."""
    return frame_to_int8(frame, height, width).astype(np.float32) / 128.0
