"""The enclosure package's exception hierarchy."""

__all__ = ["EnclosureError", "GeometryError", "ParameterError", "ProfileError", "UnknownProfileError"]


class EnclosureError(Exception):
    """Base class of every error raised by `edgefleet.enclosure`."""


class ProfileError(EnclosureError):
    """A board or sensor profile file is malformed."""


class UnknownProfileError(EnclosureError):
    """A board or sensor name that no profile describes."""


class ParameterError(EnclosureError):
    """Parameters that cannot produce a printable housing (too thin, too large, contradictory)."""


class GeometryError(EnclosureError):
    """The CSG kernel produced an invalid solid (a bug, never the user's fault)."""
