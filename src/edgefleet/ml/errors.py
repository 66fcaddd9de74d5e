"""The ml exception hierarchy."""


class MlError(Exception):
    """Base class of every error raised by `edgefleet.ml`."""


class ConfigError(MlError):
    """A training config that cannot be read or is invalid (names the file)."""


class DatasetError(MlError):
    """Data that cannot become a training set (names the file, and the line where known)."""


class ExportError(MlError):
    """Conversion, measurement or writing of the artifacts failed."""


class RetrainError(MlError):
    """Retraining from the field cannot go on: server unreachable or refusing, too few windows."""
