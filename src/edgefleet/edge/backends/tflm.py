"""The `tflm` backend: the tflite-micro Python interpreter (the firmware's int8 kernels), fixed arena."""

import logging

import numpy as np

from edgefleet.edge.errors import BackendError, ModelLoadError
from edgefleet.edge.model import ModelBundle

log = logging.getLogger(__name__)


class TflmBackend:
    name = "tflm"

    def __init__(self, bundle: ModelBundle, arena_bytes: int | None = None) -> None:
        from tflite_micro.python.tflite_micro import runtime

        self.arena_bytes = int(arena_bytes or bundle.card.arena_bytes)
        if self.arena_bytes <= 0:
            raise ModelLoadError(f"{bundle.directory}: the model card gives no arena size")
        if self.arena_bytes < bundle.card.arena_bytes:
            # tflite-micro can crash (not just fail) on a too-small arena: refuse before trying
            raise ModelLoadError(
                f"{bundle.directory}: a {self.arena_bytes}-byte arena is below the "
                f"{bundle.card.arena_bytes} bytes the model card says the model needs"
            )
        try:
            self._interp = runtime.Interpreter.from_bytes(bytes(bundle.tflite), arena_size=self.arena_bytes)
        except (RuntimeError, ValueError) as err:
            raise ModelLoadError(
                f"{bundle.directory}: cannot allocate the model in a {self.arena_bytes}-byte arena: {err}"
            ) from err
        details = self._interp.get_input_details(0)
        self.input_shape = tuple(int(d) for d in details["shape"])
        if np.dtype(details["dtype"]) != np.int8:
            raise ModelLoadError(f"{bundle.directory}: model input is {details['dtype']}, not int8")

    def invoke(self, x: np.ndarray) -> np.ndarray:
        data = np.ascontiguousarray(x, dtype=np.int8).reshape(self.input_shape)
        try:
            self._interp.set_input(data, 0)
            self._interp.invoke()
            out: np.ndarray = self._interp.get_output(0)
        except RuntimeError as err:
            raise BackendError(f"TFLM invoke failed: {err}") from err
        return out.reshape(out.shape[1:]) if out.shape[0] == 1 else out

    def invoke_batch(self, x: np.ndarray) -> np.ndarray:
        return np.stack([self.invoke(row) for row in np.asarray(x, dtype=np.int8)])
