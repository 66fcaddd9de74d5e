"""One exception hierarchy for the device runtime."""


class EdgeError(RuntimeError):
    """Base class of every error the device runtime raises on purpose."""


class ModelLoadError(EdgeError):
    """A model directory that cannot be loaded (missing file, bad card, arena too small)."""


class BackendError(EdgeError):
    """An inference backend that cannot run the model."""


class SourceError(EdgeError):
    """A sensor source that cannot be opened or read."""


class OutboxError(EdgeError):
    """The durable outbox cannot be opened or written."""


class ConfigError(EdgeError):
    """A device configuration that does not validate (names the file)."""
