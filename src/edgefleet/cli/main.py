"""The `edgefleet` command."""

from typing import Annotated

import typer

from edgefleet import __version__
from edgefleet.cli import (
    bench_cmd,
    contracts_cmd,
    data_cmd,
    demo_cmd,
    device_cmd,
    enclosure_cmd,
    model_cmd,
    server_cmd,
    sim_cmd,
)
from edgefleet.cli.console import PASSTHROUGH, console
from edgefleet.cli.logs import setup_logging
from edgefleet.cli.settings import CliSettings, LogLevel

app = typer.Typer(
    name="edgefleet",
    help="edgefleet: TinyML models, device runtime, server and dashboard for industrial IoT.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        console.print(f"edgefleet {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    log_level: Annotated[
        LogLevel | None, typer.Option(help="Logging level (default: EDGEFLEET_LOG_LEVEL or INFO).")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """edgefleet: TinyML models, device runtime, server and dashboard for industrial IoT."""
    setup_logging(log_level or CliSettings().log_level)


app.add_typer(data_cmd.app, name="data")
app.add_typer(model_cmd.app, name="model")
app.add_typer(device_cmd.app, name="device")
app.add_typer(server_cmd.app, name="server")
app.add_typer(contracts_cmd.app, name="contracts")
app.command("sim", context_settings=PASSTHROUGH)(sim_cmd.sim)
app.command("demo")(demo_cmd.demo)
app.command("enclosure", context_settings=PASSTHROUGH)(enclosure_cmd.enclosure)
app.command("bench", context_settings=PASSTHROUGH)(bench_cmd.bench)


def main() -> None:
    app()
