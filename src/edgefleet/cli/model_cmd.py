"""`edgefleet model`: train, export and ship models."""

import typer

from edgefleet.cli.console import PASSTHROUGH, not_implemented

app = typer.Typer(help="Models: train, quantize, export, pull, push to the registry.", no_args_is_help=True)


@app.command(context_settings=PASSTHROUGH)
def train() -> None:
    """Train the vibration anomaly model from a YAML config and export int8 artifacts."""
    not_implemented("model train", 3)


@app.command(context_settings=PASSTHROUGH)
def export() -> None:
    """Export a trained model as a firmware project (ESP-IDF)."""
    not_implemented("model export", 9)


@app.command(context_settings=PASSTHROUGH)
def pull() -> None:
    """Fetch a reference model (person-detect) into the cache, checking its sha256."""
    not_implemented("model pull", 7)


@app.command("train-vision", context_settings=PASSTHROUGH)
def train_vision() -> None:
    """Train a small person/no-person classifier and export int8 artifacts."""
    not_implemented("model train-vision", 7)


@app.command(context_settings=PASSTHROUGH)
def push() -> None:
    """Upload a model directory to the server's registry."""
    not_implemented("model push", 8)


@app.command(context_settings=PASSTHROUGH)
def retrain() -> None:
    """Build a candidate model from devices' recent normal windows."""
    not_implemented("model retrain", 8)
