"""`edgefleet data`: make, collect and check vibration datasets."""

import typer

from edgefleet.cli.console import PASSTHROUGH, not_implemented

app = typer.Typer(help="Datasets: synthesize, collect from a serial device, inspect.", no_args_is_help=True)


@app.command(context_settings=PASSTHROUGH)
def synth() -> None:
    """Generate a physics-based MPU6050 vibration dataset (CSV with a label column)."""
    not_implemented("data synth", 3)


@app.command(context_settings=PASSTHROUGH)
def collect() -> None:
    """Record labelled windows from a device streaming CSV lines over a serial port."""
    not_implemented("data collect", 3)


@app.command(context_settings=PASSTHROUGH)
def inspect() -> None:
    """Load a dataset as the trainer would and report windows, classes and rejects."""
    not_implemented("data inspect", 3)
