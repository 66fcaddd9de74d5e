"""`edgefleet sim`: a simulated fleet in one process."""

from edgefleet.cli.console import not_implemented


def sim() -> None:
    """Run a fleet of simulated devices, each with its own connection, outbox and clock."""
    not_implemented("sim", 4)
