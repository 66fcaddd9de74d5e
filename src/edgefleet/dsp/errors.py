"""The dsp exception hierarchy."""


class DspError(Exception):
    """Base class of every error raised by `edgefleet.dsp`."""


class FeatureError(DspError, ValueError):
    """Windows or a feature configuration that cannot produce features."""


class RecordingError(DspError, ValueError):
    """A recording file that cannot be read; the message names the file (and line where known)."""

    def __init__(self, path: object, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class ImageError(DspError, ValueError):
    """A camera frame, or a model input size, that cannot become model input (no pixels, an empty crop)."""
