"""`edgefleet enclosure`: printable housings (base and lid) for a board and device kind."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from edgefleet.cli.console import console, err_console, fail

if TYPE_CHECKING:
    from edgefleet.enclosure.profiles import Profiles


class KindChoice(enum.StrEnum):
    vibration = "vibration"
    camera = "camera"


class Fastening(enum.StrEnum):
    screws = "screws"
    snap = "snap"


def _list_profiles(extra: Profiles | None) -> None:
    from edgefleet.enclosure.profiles import load_profiles

    boards, sensors = load_profiles()
    if extra:
        boards, sensors = {**boards, **extra[0]}, {**sensors, **extra[1]}
    table = Table(title="Profiles")
    for column in ("name", "role", "PCB (mm)", "holes", "title"):
        table.add_column(column)
    for p in [
        *sorted(boards.values(), key=lambda p: p.name),
        *sorted(sensors.values(), key=lambda p: p.name),
    ]:
        table.add_row(p.name, p.role, f"{p.pcb.length:g} x {p.pcb.width:g}", str(len(p.holes)), p.title)
    console.print(table)


def enclosure(
    ctx: typer.Context,
    *,
    kind: Annotated[KindChoice | None, typer.Option(help="Device kind.")] = None,
    board: Annotated[str | None, typer.Option(help="Board profile (see --list).")] = None,
    sensor: Annotated[
        str | None,
        typer.Option(help="Sensor profile: IMU for vibration (default gy-521), camera module otherwise."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Directory for STL, 3MF, PNG and summary JSON.")] = Path(
        "enclosure"
    ),
    profiles: Annotated[
        Path | None,
        typer.Option(help="YAML file with more board/sensor profiles (same layout as the bundled one)."),
    ] = None,
    wall: Annotated[float, typer.Option(help="Minimum wall thickness, mm.")] = 2.0,
    clearance: Annotated[float, typer.Option(help="Free space around the board, mm.")] = 0.5,
    tolerance: Annotated[float, typer.Option(help="Gap between mating printed parts, mm.")] = 0.2,
    fastening: Annotated[Fastening, typer.Option(help="Lid fastening.")] = Fastening.screws,
    screw: Annotated[
        str, typer.Option(help="Lid screw: M2, M2.5 or M3 (self-tapping into the bosses).")
    ] = "M3",
    vents: Annotated[bool, typer.Option(help="Vent slots in the +y wall.")] = True,
    base_thickness: Annotated[float, typer.Option(help="Vibration base floor, mm.")] = 8.0,
    field_of_view: Annotated[float, typer.Option(help="Camera field of view kept clear, degrees.")] = 70.0,
    nozzle: Annotated[float, typer.Option(help="Printer nozzle, mm.")] = 0.4,
    layer_height: Annotated[float, typer.Option(help="Layer height, mm.")] = 0.2,
    build_volume: Annotated[
        tuple[float, float, float], typer.Option(help="Printer build volume X Y Z, mm.")
    ] = (220.0, 220.0, 250.0),
    density: Annotated[float, typer.Option(help="Filament density, g/cm³ (PLA 1.24).")] = 1.24,
    flow_rate: Annotated[
        float, typer.Option(help="Average volumetric flow for the time estimate, mm³/s.")
    ] = 5.0,
    preview: Annotated[bool, typer.Option(help="Write the PNG preview.")] = True,
    checks: Annotated[bool, typer.Option(help="Run the geometric checks (exit 1 if one fails).")] = True,
    list_profiles: Annotated[
        bool, typer.Option("--list", help="List board and sensor profiles and exit.")
    ] = False,
) -> None:
    """Generate a 3D-printable housing (base and lid) for a board and device kind."""
    if ctx.args:
        fail(f"unexpected arguments: {' '.join(ctx.args)} (see `edgefleet enclosure --help`)", code=2)
    from edgefleet.enclosure import (
        EnclosureError,
        generate,
        get_board,
        get_sensor,
        parse_params,
        read_profile_file,
        run_checks,
        write_outputs,
    )

    try:
        extra = read_profile_file(profiles) if profiles else None
    except EnclosureError as err:
        fail(str(err))
    if list_profiles:
        _list_profiles(extra)
        return
    if kind is None or board is None:
        fail("--kind and --board are required (`--list` shows the boards)", code=2)
    values: dict[str, Any] = {
        "wall": wall,
        "clearance": clearance,
        "tolerance": tolerance,
        "fastening": fastening.value,
        "screw": screw,
        "vents": vents,
        "base_thickness": base_thickness,
        "field_of_view": field_of_view,
        "printer": {
            "nozzle": nozzle,
            "layer_height": layer_height,
            "build_volume": build_volume,
            "density": density,
            "flow_rate": flow_rate,
        },
    }
    try:
        params = parse_params(values)
        board_profile = get_board(board, extra)
        sensor_profile = get_sensor(sensor, extra) if sensor else None
        housing = generate(kind.value, board_profile, sensor_profile, params)
        results = run_checks(housing) if checks else []
        outputs = write_outputs(housing, out, results, preview=preview)
    except EnclosureError as err:
        fail(str(err))
    except OSError as err:
        fail(f"cannot write to {out}: {err}")

    layout = housing.layout
    table = Table(
        title=f"{kind.value} housing for {layout.board.name}"
        + (f" + {layout.sensor.name}" if layout.sensor else "")
    )
    for column in (
        "part",
        "volume cm³",
        f"mass g (@{density:g} g/cm³)",
        "bounding box mm (as printed)",
        "print time",
    ):
        table.add_column(column)
    for s in outputs.stats:
        size = " x ".join(f"{v:.1f}" for v in s.size_mm)
        table.add_row(s.name, f"{s.volume_cm3:.1f}", f"{s.mass_g:.1f}", size, s.print_time_text)
    console.print(table)
    for path in outputs.files:
        console.print(f"wrote {path}", highlight=False)
    failed = [r for r in results if not r.ok]
    for r in results:
        mark = "[green]ok[/]" if r.ok else "[bold red]FAIL[/]"
        err_console.print(f"{mark} {r.name}: {r.detail}", highlight=False)
    if failed:
        fail(f"{len(failed)} geometric check(s) failed", code=1)
