"""`edgefleet device`: run one device, replay a recording, make provisioning QR codes."""

import typer

from edgefleet.cli.console import PASSTHROUGH, not_implemented

app = typer.Typer(
    help="Devices: run a device, replay recordings offline, provisioning QR.", no_args_is_help=True
)


@app.command(context_settings=PASSTHROUGH)
def run() -> None:
    """Run one device against a broker until stopped."""
    not_implemented("device run", 4)


@app.command(context_settings=PASSTHROUGH)
def replay() -> None:
    """Run the device loop offline over a recording and write one decision per window."""
    not_implemented("device replay", 4)


@app.command(context_settings=PASSTHROUGH)
def qr() -> None:
    """Render a Wi-Fi + claim-token provisioning QR code as PNG and SVG."""
    not_implemented("device qr", 7)
