"""Feature extraction, scoring, the vibration synthesizer and recording readers.

Pure numpy + stdlib, shared by training (`ml`) and devices (`edge`). Imports nothing of edgefleet
outside `dsp`. See docs/model-factory.md.
"""

from edgefleet.dsp.errors import DspError, FeatureError, ImageError, RecordingError
from edgefleet.dsp.features import (
    BAND_EPS,
    FEATURE_SETS,
    FeatureConfig,
    band_powers,
    extract,
    feature_names,
    n_features,
)
from edgefleet.dsp.recordings import (
    Table,
    WindowSet,
    read_npz,
    read_table_csv,
    read_window_folder,
    write_table_csv,
)
from edgefleet.dsp.scoring import dequantize, quantize, reconstruction_score, standardize
from edgefleet.dsp.synth import AXES, FAULTS, UNITS, MachineConfig, SynthChunk, VibrationSynth
from edgefleet.dsp.windows import debounce_in_hops, frame, overlap_factor, window_count

__all__ = [
    "AXES",
    "BAND_EPS",
    "FAULTS",
    "FEATURE_SETS",
    "UNITS",
    "DspError",
    "FeatureConfig",
    "FeatureError",
    "ImageError",
    "MachineConfig",
    "RecordingError",
    "SynthChunk",
    "Table",
    "VibrationSynth",
    "WindowSet",
    "band_powers",
    "debounce_in_hops",
    "dequantize",
    "extract",
    "feature_names",
    "frame",
    "n_features",
    "overlap_factor",
    "quantize",
    "read_npz",
    "read_table_csv",
    "read_window_folder",
    "reconstruction_score",
    "standardize",
    "window_count",
    "write_table_csv",
]
