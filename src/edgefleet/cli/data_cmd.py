"""`edgefleet data`: make, collect and check vibration datasets."""

from pathlib import Path
from typing import Annotated

import typer

from edgefleet.cli.console import console, err_console, fail
from edgefleet.cli.settings import CliSettings

app = typer.Typer(help="Datasets: synthesize, collect from a serial device, inspect.", no_args_is_help=True)

ConfigArg = Annotated[Path, typer.Argument(help="Training config YAML (e.g. configs/synthetic.yaml).")]


def _variables() -> dict[str, str]:
    settings = CliSettings()
    return {"shared": str(settings.shared), "home": str(settings.home)}


@app.command()
def synth(
    config: ConfigArg,
    out: Annotated[Path | None, typer.Option(help="CSV to write (default: the config's data.path).")] = None,
    seed: Annotated[int | None, typer.Option(help="Override data.synth.seed.")] = None,
) -> None:
    """Generate a physics-based MPU6050 vibration dataset (CSV with a label column, format a)."""
    from edgefleet.ml import MlError, load_config
    from edgefleet.ml.config import expand_path
    from edgefleet.ml.synthdata import write_synthetic

    try:
        cfg, _ = load_config(config)
        if cfg.data.synth is None or cfg.data.format != "csv_table":
            fail(f"{config}: needs data.format csv_table and a data.synth section", code=2)
        synth_cfg = cfg.data.synth if seed is None else cfg.data.synth.model_copy(update={"seed": seed})
        path = out or expand_path(cfg.data.path, _variables())
        with err_console.status(f"synthesizing {path}"):
            n = write_synthetic(cfg.data, synth_cfg, path)
    except MlError as err:
        fail(str(err))
    seconds = n / cfg.data.sample_rate_hz
    labels = ", ".join(dict.fromkeys(s.label for s in synth_cfg.segments))
    console.print(f"wrote {path}: {n} samples ({seconds:.0f} s at {cfg.data.sample_rate_hz:g} Hz; {labels})")


@app.command()
def collect(
    port: Annotated[str, typer.Option(help="Serial port, e.g. /dev/ttyUSB0.")],
    label: Annotated[str, typer.Option(help="Label of everything recorded now (e.g. normal).")],
    out: Annotated[Path, typer.Option(help="Format-(a) CSV to append to.")] = Path("data/collected.csv"),
    windows: Annotated[int, typer.Option(min=1, help="Windows to record.")] = 20,
    window: Annotated[int, typer.Option(min=2, help="Samples per window.")] = 128,
    axes: Annotated[
        str, typer.Option(help="Comma-separated axis names (one CSV field each).")
    ] = "ax,ay,az,gx,gy,gz",
    baud: Annotated[int, typer.Option(help="Baud rate.")] = 115200,
    idle_timeout: Annotated[
        float, typer.Option(help="Give up after this many seconds without a sample.")
    ] = 5.0,
) -> None:
    """Record labelled windows from a device streaming CSV lines over a serial port."""
    import re

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from edgefleet.ml.collect import append_table, open_serial
    from edgefleet.ml.collect import collect as collect_samples
    from edgefleet.ml.errors import MlError

    if not re.fullmatch(r"[A-Za-z0-9_.:+-]{1,64}", label):
        fail(f"label {label!r} must be 1-64 of A-Z a-z 0-9 _ . : + -", code=2)
    names = [a.strip() for a in axes.split(",") if a.strip()]
    total = windows * window
    try:
        device = open_serial(port, baud)
        with (
            device,
            Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err_console,
            ) as progress,
        ):
            task = progress.add_task(f"recording {label!r}", total=total)
            result = collect_samples(
                device,
                total,
                len(names),
                idle_timeout_s=idle_timeout,
                on_sample=lambda n: progress.update(task, completed=n),
            )
        append_table(out, result.samples, label, names)
    except MlError as err:
        fail(str(err))
    console.print(
        f"appended {windows} windows ({total} samples, label {label!r}) to {out}; "
        f"{result.bad_lines} unparseable lines skipped"
    )


@app.command()
def inspect(config: ConfigArg) -> None:
    """Load a dataset as the trainer would and report windows, classes and rejects."""
    from rich.table import Table

    from edgefleet.ml import MlError, load_config
    from edgefleet.ml.datasets import load_splits
    from edgefleet.ml.pipeline import resolve_data

    try:
        cfg, _ = load_config(config)
        path = resolve_data(cfg, _variables())
        splits = load_splits(cfg.data, path)
    except MlError as err:
        fail(str(err))
    stats = splits.stats
    table = Table("label", "windows", box=None)
    for name, count in sorted(stats.per_label.items()):
        table.add_row(name, str(count))
    console.print(f"{path}: {stats.windows} windows of {cfg.data.window} samples x {len(cfg.data.axes)} axes")
    console.print(table)
    console.print(
        f"train {len(splits.train)}, calibration {len(splits.calibration)}, test normal "
        f"{len(splits.test_normal)}, test anomaly {len(splits.test_anomaly)}"
    )
    console.print(
        f"rejected {stats.rejected} {stats.rejected_reasons or ''}; "
        f"tail samples dropped {stats.tail_samples_dropped}"
    )
