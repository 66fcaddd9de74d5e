"""`edgefleet model`: train, export and ship models."""

from pathlib import Path
from typing import Annotated

import typer

from edgefleet.cli import camera_cmd, firmware_cmd, model_push, retrain_cmd

app = typer.Typer(help="Models: train, quantize, export, pull, push to the registry.", no_args_is_help=True)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Training config YAML (e.g. configs/cwru.yaml).")],
    out: Annotated[Path, typer.Option(help="Directory for the artifacts.")] = Path("build/model"),
) -> None:
    """Train the vibration anomaly model from a YAML config and export int8 artifacts."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from edgefleet.cli.console import console, err_console, fail
    from edgefleet.cli.settings import CliSettings
    from edgefleet.ml import MlError, load_config
    from edgefleet.ml.pipeline import train as run_training

    settings = CliSettings()
    variables = {"shared": str(settings.shared), "home": str(settings.home)}
    stages = ("data", "features", "train", "quantize", "evaluate", "optimize", "export")
    try:
        cfg, sha = load_config(config)
        with Progress(
            TextColumn("[bold]{task.description:<9}"), BarColumn(), TimeElapsedColumn(), console=err_console
        ) as progress:
            tasks = {name: progress.add_task(name, total=1.0) for name in stages}

            def on_progress(stage: str, fraction: float) -> None:
                if stage in tasks:
                    progress.update(tasks[stage], completed=fraction)

            result = run_training(cfg, out, variables=variables, config_sha256=sha, progress=on_progress)
    except MlError as err:
        fail(str(err))
    r = result.report
    console.print(
        f"[bold]{cfg.model_id}[/] {cfg.model_version}: int8 AUC {r['int8']['auc']:.4f} "
        f"(float {r['float']['auc']:.4f}, K-means {r['baseline_kmeans']['auc']:.4f}), "
        f"recall {r['int8']['recall']:.3f}, false alarms {r['int8']['false_alarm_rate']:.3%}, "
        f"threshold {r['threshold']['value']:.4g} ({r['threshold']['policy']}), "
        f"flash {r['model']['flash_bytes']} B, arena {r['model']['arena_bytes']} B"
    )
    for name in result.files:
        console.print(f"  {out / name}")


app.command("export")(firmware_cmd.export)
app.command("pull")(camera_cmd.pull)
app.command("train-vision")(camera_cmd.train_vision)


app.command("push")(model_push.push)


app.command("retrain")(retrain_cmd.retrain)
