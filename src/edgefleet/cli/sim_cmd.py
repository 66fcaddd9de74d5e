"""`edgefleet sim`: a simulated fleet in one process."""

import json
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table

from edgefleet.cli.console import console, err_console, fail
from edgefleet.cli.device_cmd import build_config, clock_overrides, load_model
from edgefleet.cli.settings import CliSettings


def _table(fleet: "object", elapsed: float, show: int = 12) -> Table:
    from edgefleet.edge.sim.fleet import Fleet

    assert isinstance(fleet, Fleet)
    totals = fleet.totals()
    table = Table(
        title=f"edgefleet sim: {totals['devices']} devices, {totals['connected']} connected, "
        f"{totals['windows']} windows, {totals['events']} events, {totals['alarms']} in alarm, "
        f"outbox {totals['outbox_depth']}  ({elapsed:.0f} s)"
    )
    for col in ("device", "mode", "link", "windows", "events", "alarm", "outbox"):
        table.add_column(col)
    rows = sorted(fleet.rows(), key=lambda r: (not r.alarm, -r.events))[:show]
    for r in rows:
        table.add_row(
            r.device_id,
            r.mode,
            "up" if r.connected else "[red]down[/]",
            str(r.windows),
            str(r.events),
            "[bold red]ALARM[/]" if r.alarm else "",
            str(r.outbox_depth),
        )
    return table


def sim(
    *,
    devices: Annotated[int, typer.Option(help="How many devices.")] = 10,
    model: Annotated[
        Path | None, typer.Option(help="Model directory; without one devices run degraded.")
    ] = None,
    broker: Annotated[str, typer.Option(help="mqtt://host:port")] = "mqtt://127.0.0.1:1883",
    faults: Annotated[
        str | None, typer.Option(help="GLOB=FAULT@S\\[xSEV],...;... e.g. 'sim-0003=imbalance@30'")
    ] = None,
    prefix: Annotated[str, typer.Option(help="Device ids are PREFIX-0001...")] = "sim",
    seed: Annotated[int, typer.Option(help="Device i uses machine seed SEED+i.")] = 0,
    speed: Annotated[float, typer.Option(help="Multiple of real time.")] = 1.0,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds of sensor time.")
    ] = None,
    telemetry_interval: Annotated[
        float, typer.Option(help="Seconds of sensor time between telemetry.")
    ] = 60.0,
    commission_windows: Annotated[
        int | None, typer.Option(help="Commission each device over N windows.")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Device config YAML used as a template.")] = None,
    outbox_dir: Annotated[
        Path | None, typer.Option(help="Outbox directory (default: HOME/sim-outbox).")
    ] = None,
    username_template: Annotated[
        str | None, typer.Option(help="MQTT username per device, e.g. '{id}'.")
    ] = None,
    password_template: Annotated[
        str | None, typer.Option(help="MQTT password per device, e.g. 'pw-{id}'.")
    ] = None,
    ntp_server: Annotated[
        list[str] | None, typer.Option(help="SNTP server host\\[:port]; default: none.")
    ] = None,
    backend: Annotated[
        str, typer.Option(help="tflm (one interpreter per device) or int8ref (bit-exact, lighter).")
    ] = "tflm",
    live: Annotated[bool, typer.Option(help="Show the live Rich summary.")] = True,
) -> None:
    """Run a fleet of simulated devices, each with its own connection, outbox and clock."""
    from edgefleet.edge.errors import EdgeError
    from edgefleet.edge.sim.fleet import Fleet

    bundle = load_model(model)
    template = build_config(
        config,
        device_id="template",
        mqtt__url=broker,
        telemetry_interval_s=telemetry_interval,
        commissioning__windows=commission_windows,
        backend=backend,
        outbox__directory=outbox_dir or (None if config else CliSettings().home / "sim-outbox"),
        **clock_overrides(ntp_server, not ntp_server),
    )
    try:
        fleet = Fleet(
            template,
            bundle,
            devices,
            prefix=prefix,
            faults=faults,
            seed=seed,
            username_template=username_template,
            password_template=password_template,
        )
    except EdgeError as err:
        fail(str(err))
    fleet.start(sync_clocks=bool(ntp_server))
    thread = fleet.run_in_thread(speed=speed, duration_s=duration)
    t0 = time.monotonic()
    try:
        if live:
            with Live(_table(fleet, 0), console=err_console, refresh_per_second=2) as view:
                while thread.is_alive():
                    thread.join(0.5)
                    view.update(_table(fleet, time.monotonic() - t0))
        else:
            while thread.is_alive():
                thread.join(0.5)
        _drain(fleet, timeout=30.0)
    except KeyboardInterrupt:
        pass
    finally:
        fleet.stop()
        totals = fleet.totals()
        fleet.close()
    console.print_json(json.dumps(totals))


def _drain(fleet: "object", timeout: float) -> None:
    """Give the links a moment to deliver what is still in the outboxes."""
    from edgefleet.edge.sim.fleet import Fleet

    assert isinstance(fleet, Fleet)
    done = threading.Event()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done.is_set():
        if fleet.totals()["outbox_depth"] == 0:
            return
        time.sleep(0.2)
