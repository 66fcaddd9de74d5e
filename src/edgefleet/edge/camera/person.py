"""Person detection with any int8 model that has the TFLM person_detection interface."""

import time

import numpy as np

from edgefleet.edge.backends import InferenceBackend
from edgefleet.edge.camera.preprocess import check_camera_model_input, frame_to_input
from edgefleet.edge.errors import ModelLoadError
from edgefleet.edge.model import ModelBundle

DEFAULT_LABELS = ("no_person", "person")


class PersonModel:
    """Frame in, person probability out (the dequantized `person` output)."""

    def __init__(self, bundle: ModelBundle, backend: InferenceBackend) -> None:
        card = self.card = bundle.card
        self.height, self.width = check_camera_model_input(card.input)
        labels = tuple(card.labels) or DEFAULT_LABELS
        if "person" not in labels or card.output.shape[-1] != len(labels):
            raise ModelLoadError(
                f"{bundle.directory}: output must be [{', '.join(DEFAULT_LABELS)}], card says {labels}"
            )
        assert card.output.quantization is not None  # load_model_dir checked it
        self.person_index = labels.index("person")
        self.output_scale = card.output.quantization.scale
        self.output_zero_point = card.output.quantization.zero_point
        self.backend = backend
        self.last_invoke_us = 0.0

    def raw_output(self, model_input: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.backend.invoke(model_input.reshape(1, self.height, self.width, 1))
        self.last_invoke_us = (time.perf_counter() - t0) * 1e6
        return np.asarray(out, dtype=np.int8).reshape(-1)

    def score(self, frame: np.ndarray) -> float:
        out = self.raw_output(frame_to_input(frame, self.height, self.width))
        return float((int(out[self.person_index]) - self.output_zero_point) * self.output_scale)
