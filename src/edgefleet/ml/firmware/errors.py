"""Errors of the firmware generator."""

from edgefleet.ml.errors import MlError


class FirmwareError(MlError):
    """A model that cannot become firmware (bad artifacts, unsupported op, over budget, bad target)."""
