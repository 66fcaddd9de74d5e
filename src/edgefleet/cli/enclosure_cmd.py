"""`edgefleet enclosure`: printable housings."""

from edgefleet.cli.console import not_implemented


def enclosure() -> None:
    """Generate a 3D-printable housing (base and lid) for a board and device kind."""
    not_implemented("enclosure", 10)
