"""Camera-node commands: `device qr`, `device camera`, `model pull`, `model train-vision`."""

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from edgefleet.cli.console import console, err_console, fail
from edgefleet.cli.settings import CliSettings


def qr(
    ssid: Annotated[str, typer.Option(help="Wi-Fi network name.")],
    server: Annotated[str, typer.Option(help="Server base URL the device claims its credentials from.")],
    device_id: Annotated[str, typer.Option("--device-id", help="Device id from 'add device'.")],
    token: Annotated[str, typer.Option(help="The device's one-time claim token.")],
    password: Annotated[str, typer.Option(help="Wi-Fi passphrase (empty for an open network).")] = "",
    security: Annotated[str, typer.Option(help="WPA, WEP or nopass.")] = "WPA",
    hidden: Annotated[bool, typer.Option(help="The network does not broadcast its name.")] = False,
    out: Annotated[Path, typer.Option(help="Directory for <device-id>.png and .svg.")] = Path(),
    scale: Annotated[int, typer.Option(min=1, max=40, help="Pixels per module in the PNG.")] = 8,
) -> None:
    """Render a provisioning QR code (Wi-Fi + server + claim token) as PNG and SVG."""
    from edgefleet.edge.provisioning import ProvisioningError, ProvisioningPayload, encode_payload
    from edgefleet.edge.provisioning.qr import render_qr

    if security not in ("WPA", "WEP", "nopass"):
        fail(f"unknown security type {security!r}: use WPA, WEP or nopass", code=2)
    try:
        payload = ProvisioningPayload(ssid, password, security, server, device_id, token, hidden)  # type: ignore[arg-type]
    except ProvisioningError as err:
        fail(f"cannot make a provisioning code: {err}", code=2)
    png, svg = render_qr(encode_payload(payload), out, stem=device_id, scale=scale)
    console.print(f"wrote {png}\nwrote {svg}")


def camera(
    model: Annotated[Path, typer.Option(help="Model directory (model.tflite + model_card.json).")],
    frames: Annotated[
        str, typer.Option(help="A folder of images, a video file, or 'synthetic' (empty scenes, for tests).")
    ],
    state: Annotated[Path, typer.Option(help="The device's storage: settings, credentials, outbox.")] = Path(
        ".edgefleet/camera"
    ),
    fps: Annotated[float, typer.Option(help="Frames per second.")] = 2.0,
    loop: Annotated[bool, typer.Option(help="Start the folder again at its end.")] = False,
    broker: Annotated[str | None, typer.Option(help="Broker URL; default: the one the server gave.")] = None,
    thumbnail: Annotated[bool, typer.Option(help="Attach a small JPEG to person events.")] = False,
    reset: Annotated[bool, typer.Option(help="Press the reset button first: wipe network settings.")] = False,
    telemetry_interval: Annotated[float, typer.Option(help="Seconds between telemetry messages.")] = 60.0,
) -> None:
    """Run a camera node: provisioning by QR code, then person detection reported over MQTT.

    SIGUSR1 presses the reset button (wipe network settings, back to provisioning).
    """
    from edgefleet.edge.backends.tflm import TflmBackend
    from edgefleet.edge.camera import (
        CameraConfig,
        CameraNode,
        FolderSource,
        ListSource,
        PersonModel,
        VideoSource,
        synthetic_frames,
    )
    from edgefleet.edge.camera.runner import CameraRunner, RunnerOptions
    from edgefleet.edge.errors import EdgeError
    from edgefleet.edge.model import load_model_dir

    try:
        bundle = load_model_dir(model)
        person = PersonModel(bundle, TflmBackend(bundle))
        path = Path(frames)
        source: FolderSource | VideoSource | ListSource
        if frames == "synthetic":
            source = ListSource(synthetic_frames(50), fps=fps, repeat=1_000_000 if loop else 1)
        elif path.is_dir():
            source = FolderSource(path, fps=fps, loop=loop)
        else:
            source = VideoSource(path, fps=fps)
    except EdgeError as err:
        fail(str(err), code=2)
    node = CameraNode(CameraConfig(state_dir=state, send_thumbnail=thumbnail), person)
    runner = CameraRunner(
        node, source, RunnerOptions(broker_url=broker, telemetry_interval_s=telemetry_interval)
    )
    if reset:
        runner.press_reset_button()
    stop = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: runner.press_reset_button())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    err_console.print(f"camera node in {node.mode} mode; Ctrl-C stops it")
    try:
        seen = runner.run(stop=stop)
    except KeyboardInterrupt:
        stop.set()
        seen = node.frames
    console.print(
        f"{seen} frames; mode {node.mode}; device {node.device_id or '-'}; "
        f"rejected codes {node.provisioning.rejected or 'none'}"
    )


def pull(
    name: Annotated[str, typer.Argument(help="Catalogued model, e.g. person-detect.")],
    from_path: Annotated[
        Path | None, typer.Option("--from", help="Take this local file instead of downloading it.")
    ] = None,
    cache: Annotated[Path | None, typer.Option(help="Model cache (default: $EDGEFLEET_HOME/models).")] = None,
) -> None:
    """Fetch a reference model by URL (or --from PATH), verify its pinned sha256, write its model card."""
    from edgefleet.ml.errors import MlError
    from edgefleet.ml.pretrained import pull as pull_model

    cache = cache or CliSettings().home / "models"
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), console=err_console
    ) as bar:
        task = bar.add_task(f"pull {name}", total=None)
        try:
            directory = pull_model(
                name,
                cache,
                from_path,
                progress=lambda done, total: bar.update(task, completed=done, total=total or None),
            )
        except MlError as err:
            fail(str(err), code=2)
    console.print(f"{name}: {directory}")


def train_vision(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG.yaml", help="Vision training config.")],
    out: Annotated[Path | None, typer.Option(help="Output directory (default: models/<model_id>).")] = None,
) -> None:
    """Train a small person/no-person classifier, quantize it to int8 and export its artifacts."""
    from edgefleet.ml.errors import MlError
    from edgefleet.ml.vision import load_vision_config
    from edgefleet.ml.vision import train_vision as run_training

    try:
        config = load_vision_config(config_path)
    except MlError as err:
        fail(str(err), code=2)
    out = out or Path("models") / config.model_id
    columns = (TextColumn("{task.description:<10}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, fraction: float) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=1.0)
            bar.update(tasks[stage], completed=fraction)

        try:
            result = run_training(config, out, progress)
        except MlError as err:
            fail(str(err), code=2)
    int8 = result.report["int8"]
    console.print(
        f"{config.model_id}: int8 accuracy {int8['accuracy']}, precision {int8['precision']}, "
        f"recall {int8['recall']}; flash {result.card.flash_bytes} B, "
        f"arena {result.card.arena_bytes} B -> {out}"
    )
