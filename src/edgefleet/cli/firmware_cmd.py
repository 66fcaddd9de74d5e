"""`edgefleet model export`: a firmware project (ESP-IDF) for a trained model.

The lead registers `export` on the `model` group (`app.command()(firmware_cmd.export)`).
"""

from pathlib import Path
from typing import Annotated

import typer

# CLI target names -> the names of `edgefleet.ml.firmware.ESP_IDF_TARGETS` (also accepted as is).
TARGET_ALIASES = {"esp32s3": "esp32s3", "esp32-s3": "esp32s3", "esp32": "esp32"}
FORMATS = ("esp-idf",)


def export(
    model_dir: Annotated[Path, typer.Argument(help="Model directory (model.tflite + model_card.json).")],
    target: Annotated[str, typer.Option(help="MCU: esp32s3 or esp32.")] = "esp32s3",
    format: Annotated[str, typer.Option("--format", help="Project format: esp-idf.")] = "esp-idf",
    out: Annotated[Path, typer.Option(help="Directory for the generated project.")] = Path("build/firmware"),
    server_ca: Annotated[
        Path | None,
        typer.Option(help="The server's CA (PEM, e.g. ca.crt of `edgefleet server certs`) to embed."),
    ] = None,
) -> None:
    """Export a trained model as a firmware project (ESP-IDF) with a host-verified C core."""
    from edgefleet.cli.console import console, fail
    from edgefleet.ml import MlError
    from edgefleet.ml.firmware import generate_project

    if format not in FORMATS:
        fail(f"unknown format {format!r}; supported: {', '.join(FORMATS)}", code=2)
    esp_target = TARGET_ALIASES.get(target.lower())
    if esp_target is None:
        fail(f"unknown target {target!r} for esp-idf; supported: esp32s3, esp32", code=2)
    from pydantic import ValidationError

    from edgefleet.ml.firmware import FirmwareOptions

    try:
        options = FirmwareOptions(server_ca_pem=server_ca.read_text(encoding="ascii") if server_ca else None)
        files = generate_project(model_dir, esp_target, out, options)
    except (OSError, UnicodeDecodeError) as err:
        fail(f"cannot read the server CA {server_ca}: {err}")
    except ValidationError:
        fail(f"{server_ca} is not a PEM certificate (no -----BEGIN CERTIFICATE-----)")
    except MlError as err:
        fail(str(err))
    console.print(f"[bold]ESP-IDF project[/] for {esp_target} in {out} ({len(files)} files)")
    for path in files:
        console.print(f"  {path}")
    console.print(
        f"build: cd {out} && idf.py set-target {esp_target} && idf.py build flash monitor"
        " (then provision: README.md)"
    )
