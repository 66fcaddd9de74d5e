"""`edgefleet server`: the API, ingest and embedded broker, and admin commands."""

import typer

from edgefleet.cli.console import PASSTHROUGH, not_implemented

app = typer.Typer(help="Server: start API + ingest (+ embedded broker); admin commands.")


@app.callback(invoke_without_command=True, context_settings=PASSTHROUGH)
def serve(ctx: typer.Context) -> None:
    """Start the server (API, MQTT ingest, embedded broker by default)."""
    if ctx.invoked_subcommand is None:
        not_implemented("server", 5)


@app.command(context_settings=PASSTHROUGH)
def certs() -> None:
    """Make a CA, a server and device certificates for trying out TLS."""
    not_implemented("server certs", 5)


user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
app.add_typer(user_app, name="user")


@user_app.command("create", context_settings=PASSTHROUGH)
def user_create() -> None:
    """Create a user in an organization."""
    not_implemented("server user create", 5)
