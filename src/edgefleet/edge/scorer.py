"""The scoring chain of an anomaly model: features -> standardized -> int8 -> model -> score."""

import time

import numpy as np

from edgefleet.contracts import ModelCard, SensorSpec
from edgefleet.dsp import (
    AXES,
    FeatureConfig,
    MachineConfig,
    dequantize,
    extract,
    feature_names,
    quantize,
    reconstruction_score,
    standardize,
)
from edgefleet.edge.backends import InferenceBackend
from edgefleet.edge.commissioning import Baseline
from edgefleet.edge.errors import ModelLoadError


class Scorer:
    """Features -> standardized -> int8 -> model -> dequantized -> reconstruction score (as in dsp)."""

    def __init__(self, card: ModelCard, backend: InferenceBackend) -> None:
        if card.feature_spec is None or card.sensor is None or card.threshold is None:
            raise ModelLoadError(
                f"model {card.model_id} needs feature_spec, sensor and threshold in its card"
            )
        fs = card.feature_spec
        self.feature_config = FeatureConfig.from_spec(
            fs.sample_rate_hz, tuple(card.sensor.axes), tuple(fs.sets), tuple(fs.bands_hz)
        )
        names = feature_names(self.feature_config)
        if names != list(fs.names):
            raise ModelLoadError(
                f"model card feature names {fs.names[:4]}... do not match dsp's {names[:4]}..."
            )
        self.names = names
        self.backend = backend
        assert card.input.quantization is not None and card.output.quantization is not None
        self.in_q = card.input.quantization
        self.out_q = card.output.quantization

    def features(self, windows: np.ndarray) -> np.ndarray:
        return np.asarray(extract(windows, self.feature_config), dtype=np.float64)

    def score(self, features: np.ndarray, baseline: Baseline) -> tuple[np.ndarray, np.ndarray, float]:
        """Return (scores (B,), standardized z (B, F), mean invoke time in microseconds)."""
        z = standardize(features, baseline.mean, baseline.std)
        qi = quantize(z, self.in_q.scale, self.in_q.zero_point)
        t0 = time.perf_counter()
        qo = self.backend.invoke_batch(qi)
        invoke_us = (time.perf_counter() - t0) * 1e6 / max(1, len(qi))
        y = dequantize(qo, self.out_q.scale, self.out_q.zero_point)
        return np.asarray(reconstruction_score(z, y), dtype=np.float64), np.asarray(z), invoke_us


def default_sensor() -> SensorSpec:
    """The seed's MPU6050 (what a device without a model guards its inputs with)."""
    m = MachineConfig()
    return SensorSpec(
        axes=list(AXES),
        units=["g"] * 3 + ["dps"] * 3,
        range_min=[-m.accel_range_g] * 3 + [-m.gyro_range_dps] * 3,
        range_max=[m.accel_range_g] * 3 + [m.gyro_range_dps] * 3,
    )
