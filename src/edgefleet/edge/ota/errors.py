"""The OTA part of the device runtime's exception hierarchy: every failure has a stable `reason`."""

from edgefleet.edge.errors import EdgeError

MAX_REASON_CHARS = 256  # OtaState.reason is ShortText


class OtaError(EdgeError):
    """An update step that failed; `reason` is a short stable code (`sha256_mismatch`, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def report(self) -> str:
        """What OtaState.reason carries: `<reason>: <message>`, cut to the contract's limit."""
        text = f"{self.reason}: {self.message}"
        return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


class DownloadError(OtaError):
    """The package could not be fetched (refused, too large, or the network kept failing)."""


class VerificationError(OtaError):
    """The package is not one this device may run (tampered, unsigned, incompatible, ...)."""


class CancelledError(OtaError):
    """The update was cancelled by the server or superseded by a newer one."""


class SlotError(OtaError):
    """The slot storage cannot be read or written."""
