"""The inference backend interface."""

from typing import Protocol

import numpy as np

from edgefleet.edge.errors import BackendError
from edgefleet.edge.model import ModelBundle


class InferenceBackend(Protocol):
    """Runs an int8 model: int8 input rows in, int8 output rows out."""

    name: str
    arena_bytes: int

    def invoke(self, x: np.ndarray) -> np.ndarray:
        """One input tensor (its shape without batch, int8) -> one output (int8)."""
        ...

    def invoke_batch(self, x: np.ndarray) -> np.ndarray:
        """(B, ...) int8 -> (B, ...) int8."""
        ...


def create_backend(name: str, bundle: ModelBundle, arena_bytes: int | None = None) -> InferenceBackend:
    if name == "tflm":
        from edgefleet.edge.backends.tflm import TflmBackend

        return TflmBackend(bundle, arena_bytes)
    if name == "int8ref":
        from edgefleet.edge.backends.int8ref import Int8ReferenceBackend

        return Int8ReferenceBackend(bundle)
    raise BackendError(f"unknown inference backend {name!r} (known: tflm, int8ref)")
