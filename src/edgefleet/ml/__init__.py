"""The model factory: datasets, training, quantization, calibration, evaluation, export.

Imports only `dsp` and `contracts` of edgefleet; TensorFlow and scikit-learn are imported lazily
inside the functions that need them. Entry point: `edgefleet.ml.pipeline.train(config, out)`.
"""

from edgefleet.ml.config import TrainConfig, load_config, parse_config
from edgefleet.ml.errors import ConfigError, DatasetError, ExportError, MlError

__all__ = [
    "ConfigError",
    "DatasetError",
    "ExportError",
    "MlError",
    "TrainConfig",
    "load_config",
    "parse_config",
]
