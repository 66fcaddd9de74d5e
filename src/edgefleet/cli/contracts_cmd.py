"""`edgefleet contracts`: read the wire contract."""

import json
from pathlib import Path
from typing import Annotated

import typer

from edgefleet.cli.console import console, fail
from edgefleet.contracts import contract_document, message_schemas, model_card_schema

app = typer.Typer(
    help="The wire contract: MQTT topics, message schemas and the model card.", no_args_is_help=True
)


@app.command()
def schema(
    message: Annotated[
        str | None,
        typer.Option(help="Only this message (a channel such as `event`, `ota/state`, or `model_card`)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the contract's JSON Schemas (all messages and the model card) as one JSON document."""
    if message is None:
        document = contract_document()
    elif message == "model_card":
        document = model_card_schema()
    else:
        schemas = message_schemas()
        if message not in schemas:
            fail(f"unknown message {message!r}; choose one of: {', '.join([*schemas, 'model_card'])}", code=2)
        document = schemas[message]
    text = json.dumps(document, indent=2, sort_keys=False)
    if out is None:
        console.print_json(text) if console.is_terminal else print(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        console.print(f"wrote {out}")
