"""`edgefleet demo`: server, broker, dashboard and a simulated fleet in one process, no set-up.

Parse, call `edgefleet.cli.demo`, print. The orchestration lives there.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgefleet.cli.console import console, err_console, fail
from edgefleet.cli.settings import CliSettings

if TYPE_CHECKING:
    from edgefleet.cli.demo import Demo, DemoInfo, Snapshot, StopSignals
    from edgefleet.edge.model import ModelBundle

_STAGES = ("data", "features", "train", "quantize", "evaluate", "optimize", "export")


def demo(
    *,
    port: Annotated[
        int, typer.Option(help="HTTP port of the server and dashboard (0: any free one).")
    ] = 8000,
    mqtt_port: Annotated[
        int, typer.Option(help="Port of the embedded MQTT broker (0: any free one).")
    ] = 1884,
    devices: Annotated[int, typer.Option(min=1, help="How many simulated vibration devices.")] = 12,
    cameras: Annotated[
        bool, typer.Option(help="Two camera nodes, if the person-detection model is here.")
    ] = True,
    speed: Annotated[
        float, typer.Option(help="Sensor time runs this many times faster (faults sooner).")
    ] = 1.0,
    duration: Annotated[float | None, typer.Option(help="Stop by itself after this many seconds.")] = None,
    home: Annotated[
        Path | None,
        typer.Option(help="Demo home: database, credentials, model (default: $EDGEFLEET_HOME/demo)."),
    ] = None,
    faults: Annotated[
        str | None, typer.Option(help="Fault schedule GLOB=FAULT@S\\[xSEV],...;... (default: the demo's).")
    ] = None,
    train_config: Annotated[
        Path | None, typer.Option(help="Training config of the vibration model (default: the shipped one).")
    ] = None,
) -> None:
    """Run the server, embedded broker, dashboard and a simulated fleet; Ctrl-C stops it all."""
    from edgefleet.cli.demo import Demo, DemoError, DemoOptions, StopSignals

    settings = CliSettings()
    try:
        options = DemoOptions(
            home=home or settings.home / "demo",
            port=port,
            mqtt_port=mqtt_port,
            devices=devices,
            cameras=cameras,
            speed=speed,
            duration_s=duration,
            faults=faults,
            train_config=train_config,
            shared=settings.shared,
        )
    except DemoError as err:
        fail(str(err), code=2)
    with StopSignals() as signals:
        try:
            run = Demo(options, pull_cache=settings.home / "models")
            model = _model(run, signals)
            with run:
                info = run.start(model)
                _banner(info)
                _watch(run, signals)
                last = run.snapshot()
            left_online = run.left_online
        except DemoError as err:
            fail(str(err))
        except KeyboardInterrupt:  # during training: nothing runs yet, nothing half-written is kept
            err_console.print("stopped before the demo started; nothing was cached")
            return
    t = last.totals
    offline = "every device is offline" if left_online == 0 else f"{left_online} devices still shown online"
    console.print(
        f"stopped after {last.elapsed_s:.0f} s: {t.get('windows', 0)} windows, {t.get('events', 0)} events, "
        f"{t.get('acked', 0)} messages delivered; {offline}"
    )


def _model(run: "Demo", signals: "StopSignals") -> "ModelBundle":
    from edgefleet.cli.demo import cached_model, train_model

    plan = run.model_plan()
    bundle = cached_model(plan)
    if bundle is not None:
        err_console.print(f"using the cached model {plan.directory} (config sha256 {plan.sha256[:12]})")
        return bundle
    err_console.print(f"training the demo's vibration model ({plan.config_path.name}); once, then cached")
    columns = (TextColumn("[bold]{task.description:<9}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console) as progress, signals.interrupting():
        tasks = {name: progress.add_task(name, total=1.0) for name in _STAGES}

        def on_progress(stage: str, fraction: float) -> None:
            if stage in tasks:
                progress.update(tasks[stage], completed=fraction)

        bundle, seconds = train_model(plan, on_progress)
    err_console.print(f"trained {bundle.card.model_id} in {seconds:.1f} s; cached in {plan.directory}")
    return bundle


def _banner(info: "DemoInfo") -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("dashboard", f"{info.url}/")
    grid.add_row("API docs", f"{info.url}/docs")
    grid.add_row("email", info.email)
    grid.add_row("password", info.password)
    grid.add_row("devices", f"{len(info.devices)} vibration, {len(info.cameras)} camera")
    grid.add_row("cameras", info.camera_note)
    grid.add_row("broker", info.broker_url)
    grid.add_row("home", str(info.home))
    if info.inbox:
        grid.add_row("inbox", info.inbox)
    reused = f"; reused {len(info.reused)} devices" if info.reused else ""
    title = "edgefleet demo" + (" (new demo account)" if info.user_created else "")
    console.print(Panel(grid, title=title, subtitle=f"Ctrl-C stops it{reused}", expand=False))


def _table(snapshot: "Snapshot") -> Table:
    t = snapshot.totals
    table = Table(
        title=f"{t.get('connected', 0)}/{t.get('devices', 0)} vibration devices connected, "
        f"{t.get('events', 0)} events, {t.get('alarms', 0)} in alarm ({snapshot.elapsed_s:.0f} s)"
    )
    for column in ("device", "mode", "link", "windows", "events", "alarm"):
        table.add_column(column)
    for row in snapshot.devices:
        link = "up" if row.connected else "[red]down[/]"
        alarm = "[bold red]ALARM[/]" if row.alarm else ""
        table.add_row(row.device_id, row.mode, link, str(row.windows), str(row.events), alarm)
    for cam in snapshot.cameras:
        link = "up" if cam.connected else "[red]down[/]"
        table.add_row(
            cam.device_id, cam.mode, link, f"{cam.frames} frames", "", "person" if cam.present else ""
        )
    return table


def _watch(run: "Demo", signals: "StopSignals") -> None:
    """A live table on a terminal; elsewhere (logs, tests) just the log lines."""
    if not err_console.is_terminal:
        run.wait(signals.event)
        return
    with Live(_table(run.snapshot()), console=err_console, refresh_per_second=1) as view:
        run.wait(signals.event, on_tick=lambda snapshot: view.update(_table(snapshot)))
