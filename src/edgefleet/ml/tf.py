"""Importing TensorFlow quietly and deterministically (only `ml` imports TensorFlow)."""

import os
from typing import Any


def import_tensorflow() -> Any:
    """`import tensorflow` with its C++ INFO/WARNING logs off and deterministic ops on."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    tf.config.experimental.enable_op_determinism()
    return tf
