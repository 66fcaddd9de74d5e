"""Errors of the firmware generator."""

from edgefleet.ml.errors import MlError


class FirmwareError(MlError):
    """A model that cannot become firmware (bad artifacts, unsupported op, over budget, bad target)."""


class HostBuildError(FirmwareError):
    """A host build of generated firmware, or a run of its harness, that failed (with the tool's output)."""
