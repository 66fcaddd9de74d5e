"""`edgefleet model retrain --from-server URL`: a candidate model from devices' sampled normal windows."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from edgefleet.cli.console import console, err_console, fail

_RELATIVE = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
STAGES = ("train", "quantize", "evaluate", "export")


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """`7d`, `12h`, `30m`, `2w` (ago), or an ISO 8601 time (UTC unless it names a zone)."""
    if not text:
        return None
    match = _RELATIVE.fullmatch(text.strip())
    if match:
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(f"--since {text!r}: use an ISO time (2026-12-01T08:00) or an age such as 7d, 12h, 30m")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _column(model: dict[str, Any] | None) -> list[str]:
    if not model:
        return ["none found"] + ["-"] * 6
    field = model.get("field") or {}
    stats = field.get("score_stats") or {}
    card = model.get("card_score_stats") or {}
    return [
        f"{model['model_id']} {model['model_version']}",
        _num(model.get("threshold")),
        _pct(field.get("false_alarm_rate")) + (f" ({field['false_alarms']})" if field else ""),
        f"{_num(stats.get('p50'))} / {_num(card.get('p50'))}",
        f"{_num(stats.get('p95'))} / {_num(card.get('p95'))}",
        _num(field.get("p95_vs_card")),
        _pct(model.get("fault_recall")),
    ]


def print_report(report: dict[str, Any]) -> None:
    from rich.table import Table

    field = report["field_data"]
    table = Table(
        title=f"held-out field windows: {report['candidate'].get('field', {}).get('windows', 0)} "
        f"from {field['devices']} devices",
        title_justify="left",
    )
    table.add_column("")
    table.add_column("deployed")
    table.add_column("candidate")
    rows = (
        "model",
        "threshold (card)",
        "false alarms",
        "score p50 field / card",
        "score p95 field / card",
        "p95 field / card",
        "fault recall",
    )
    deployed, candidate = _column(report["deployed"]), _column(report["candidate"])
    for name, a, b in zip(rows, deployed, candidate, strict=True):
        table.add_row(name, a, b)
    console.print(table)
    for side in ("deployed", "candidate"):
        reason = (report.get(side) or {}).get("reason")
        if reason:
            console.print(f"  {side}: {reason}")
    faults = report["faults"]
    if not faults.get("windows"):
        console.print(f"  no fault windows: {faults.get('reason', 'the dataset has none')}")
    console.print(f"  candidate: {report['candidate']['dir']}")


def retrain(
    from_server: Annotated[
        str, typer.Option("--from-server", help="Server URL, e.g. http://127.0.0.1:8000.")
    ],
    config: Annotated[Path, typer.Option("--config", help="Training config YAML (features, model, split).")],
    model_id: Annotated[
        str, typer.Option("--model-id", help="The deployed model's id (filters the samples).")
    ],
    out: Annotated[Path, typer.Option(help="Directory for the candidate model and retrain_report.json.")],
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="EDGEFLEET_API_KEY", help="An API key (efk_...).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only windows sampled since (ISO time, or 7d, 12h).")
    ] = None,
    deployed: Annotated[
        Path | None, typer.Option(help="The deployed model's directory (default: the server's registry).")
    ] = None,
    version: Annotated[str | None, typer.Option(help="Candidate version (default: deployed + 1).")] = None,
    min_windows: Annotated[int, typer.Option(min=10, help="Refuse with fewer usable field windows.")] = 200,
    max_samples: Annotated[int, typer.Option(min=10, help="Download at most this many windows.")] = 20_000,
) -> None:
    """Build a candidate model from devices' recent normal windows and compare it with the deployed one.

    Devices upload sampled windows when their config enables `samples`. Windows are split per device
    in time order (train, calibration, held-out test); the report compares false alarms at each
    model's own threshold, score statistics against each card and, when the config's dataset has
    fault windows (CWRU under EDGEFLEET_SHARED; the synthetic set), fault recall.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from edgefleet.cli.settings import CliSettings
    from edgefleet.ml import MlError, load_config
    from edgefleet.ml.retrain import RetrainOptions
    from edgefleet.ml.retrain import retrain as run_retrain

    if not api_key:
        fail("an API key is needed: pass --api-key or set EDGEFLEET_API_KEY (make one on the Account page)")
    if not from_server.startswith(("http://", "https://")):
        fail(f"--from-server must be an http:// or https:// URL, not {from_server!r}")
    settings = CliSettings()
    variables = {"shared": str(settings.shared), "home": str(settings.home)}
    options = RetrainOptions(
        server=from_server,
        api_key=api_key,
        model_id=model_id,
        out=out,
        since=parse_since(since),
        deployed_dir=deployed,
        version=version,
        min_windows=min_windows,
        max_samples=max_samples,
    )
    try:
        cfg, sha = load_config(config)
        with Progress(
            TextColumn("[bold]{task.description:<9}"),
            BarColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=err_console,
        ) as progress:
            download = progress.add_task("download", total=None, note="")
            tasks = {name: progress.add_task(name, total=1.0, note="") for name in STAGES}

            def on_download(count: int) -> None:
                progress.update(download, note=f"{count} windows")

            def on_progress(stage: str, fraction: float) -> None:
                if progress.tasks[download].total is None:
                    progress.update(download, total=1.0, completed=1.0)
                if stage in tasks:
                    progress.update(tasks[stage], completed=fraction)

            result = run_retrain(
                cfg,
                options,
                config_sha256=sha,
                variables=variables,
                progress=on_progress,
                on_download=on_download,
            )
    except MlError as err:
        fail(str(err))
    print_report(result.report)
