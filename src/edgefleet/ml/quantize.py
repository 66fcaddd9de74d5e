"""Keras -> float32 TFLite and full-integer int8 TFLite (int8 input and output)."""

import contextlib
import io
import logging
import warnings
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgefleet.ml.errors import ExportError
from edgefleet.ml.tf import import_tensorflow

log = logging.getLogger(__name__)


def representative_rows(x: NDArray[np.float32], count: int, seed: int) -> NDArray[np.float32]:
    """`count` training rows drawn reproducibly (without replacement where possible)."""
    rng = np.random.default_rng(seed)
    index = rng.choice(x.shape[0], size=min(count, x.shape[0]), replace=False)
    return np.asarray(x[np.sort(index)], dtype=np.float32)


def _convert(converter: Any) -> bytes:
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), warnings.catch_warnings():  # the converter is chatty
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            return bytes(converter.convert())
    except Exception as err:  # the converter raises many unrelated types
        raise ExportError(f"TFLite conversion failed: {err}") from err


def to_float_tflite(model: Any) -> bytes:
    tf = import_tensorflow()

    return _convert(tf.lite.TFLiteConverter.from_keras_model(model))


def to_int8_tflite(model: Any, representative: NDArray[np.float32]) -> bytes:
    """Full-integer quantization; the representative rows calibrate every tensor's range."""
    tf = import_tensorflow()

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rows = representative.astype(np.float32)
    converter.representative_dataset = lambda: ([rows[i : i + 1]] for i in range(rows.shape[0]))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return _convert(converter)
