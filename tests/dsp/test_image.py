"""dsp.image: frames without pixels are refused with the package's error, and the luma is the same
float32 arithmetic on every machine (the firmware's ef_image.c computes the same bits)."""

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import pytest

from edgefleet.dsp import DspError, ImageError
from edgefleet.dsp.image import crop_resize, frame_to_float, frame_to_int8, to_gray

F32 = np.float32
WEIGHTS = (0.299, 0.587, 0.114)


@pytest.mark.parametrize(
    ("shape", "height", "width", "message"),
    [
        ((0, 160, 3), 96, 96, "nothing to resize"),  # a 0-row frame (was ZeroDivisionError)
        ((120, 0, 3), 96, 96, "nothing to resize"),  # a 0-column frame (was all -128)
        ((0, 0), 96, 96, "nothing to resize"),
        ((1, 1000), 96, 1, "centre crop"),  # the crop to a 1:96 aspect of a 1000x1 strip is empty
        ((120, 160), 0, 96, "cannot resize"),
        ((120, 160), 96, -1, "cannot resize"),
    ],
)
def test_frames_without_pixels_are_refused_with_the_dsp_error(
    shape: tuple[int, ...], height: int, width: int, message: str
) -> None:
    frame = np.zeros(shape, np.uint8)
    for convert in (frame_to_int8, frame_to_float):
        with pytest.raises(ImageError, match=message) as caught:
            convert(frame, height, width)
        assert isinstance(caught.value, DspError) and isinstance(caught.value, ValueError)


def test_a_frame_of_the_wrong_shape_is_an_image_error() -> None:
    with pytest.raises(ImageError, match=r"\(H, W\) or \(H, W, 3\|4\)"):
        to_gray(np.zeros((4, 4, 2), np.uint8))


def test_the_smallest_frames_still_convert() -> None:
    assert frame_to_int8(np.full((1, 1), 200, np.uint8), 96, 96).tolist() == [[72] * 96] * 96
    assert crop_resize(np.full((1, 1000), 7, np.uint8), 1, 1).tolist() == [[7]]


def colour_blocks() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every 8-bit RGB colour, one red value at a time: (r, g, b) as float64 arrays of 65,536."""
    g, b = (a.astype(np.float64).ravel() for a in np.meshgrid(np.arange(256), np.arange(256), indexing="ij"))
    for r in range(256):
        yield np.full(g.shape, float(r)), g, b


def to_f32(x: np.ndarray) -> np.ndarray:
    """Round exact float64 values to float32: IEEE single precision rounding."""
    return x.astype(np.float32).astype(np.float64)


def luma_unfused(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IEEE single precision, every product and sum rounded: (r*R + g*G) + b*B, emulated in float64,
    where a product of a byte and a float32 and a sum of two such values are exact."""
    wr, wg, wb = (float(F32(w)) for w in WEIGHTS)
    return to_f32(to_f32(to_f32(r * wr) + to_f32(g * wg)) + to_f32(b * wb))


def luma_fused(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """What a BLAS dot product with fused multiply-adds computes: fma(b, B, fma(g, G, r*R))."""
    wr, wg, wb = (float(F32(w)) for w in WEIGHTS)
    return to_f32(to_f32(g * wg + to_f32(r * wr)) + b * wb)


def test_luma_is_single_precision_without_fused_multiply_adds_for_every_colour() -> None:
    differ_if_fused = 0
    for r, g, b in colour_blocks():
        frame = np.stack([r, g, b], axis=-1).astype(np.uint8).reshape(256, 256, 3)
        expected = np.clip(np.rint(luma_unfused(r, g, b)), 0, 255).astype(np.uint8).reshape(256, 256)
        assert np.array_equal(to_gray(frame), expected), int(r[0])
        fused = np.clip(np.rint(luma_fused(r, g, b)), 0, 255).reshape(256, 256)
        differ_if_fused += int(np.count_nonzero(fused != expected))
    # The hazard is real: fused multiply-adds (as a BLAS kernel may use) round 1,396 colours differently.
    assert differ_if_fused == 1396


class Recorded(np.ndarray):
    """An array that records the numpy operations applied to it, in order."""

    calls: ClassVar[list[str]] = []

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        Recorded.calls.append(ufunc.__name__)
        plain = [np.asarray(x) if isinstance(x, Recorded) else x for x in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(np.asarray(x) if isinstance(x, Recorded) else x for x in kwargs["out"])
        result = getattr(ufunc, method)(*plain, **kwargs)
        return result.view(Recorded) if isinstance(result, np.ndarray) else result


def test_luma_is_elementwise_products_summed_in_a_fixed_order_not_a_matrix_product() -> None:
    frame = np.random.default_rng(1).integers(0, 256, (3, 5, 3), dtype=np.uint8).view(Recorded)
    Recorded.calls = []
    to_gray(frame)
    assert "matmul" not in Recorded.calls and "dot" not in Recorded.calls  # no BLAS
    assert Recorded.calls[:5] == ["multiply", "multiply", "add", "multiply", "add"]  # (r*R + g*G) + b*B
