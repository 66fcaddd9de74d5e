"""Where the CLI writes: results to stdout, everything a person reads along the way to stderr."""

from typing import NoReturn

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

# Stubs accept any arguments so that "not implemented yet" is what the user reads.
PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def not_implemented(command: str, issue: int) -> NoReturn:
    fail(f"`edgefleet {command}` is not implemented yet (tracked in issue #{issue}).", code=3)
