"""`edgefleet bench`: run one benchmark from `bench/` and print one JSON object."""

import json
from typing import Annotated

import typer
from rich.table import Table

from edgefleet.cli.bench_runner import BenchmarkError, list_benchmarks, parse_options, run_benchmark
from edgefleet.cli.console import console, fail


def bench(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Benchmark to run; see --list.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="Name the available benchmarks.")] = False,
) -> None:
    """Run one benchmark and print its figures, the machine and versions as JSON on stdout.

    Extra `--key value` options are passed to the benchmark (e.g. `--db URL --broker URL`).
    """
    try:
        if list_:
            table = Table("benchmark", "what it measures", box=None)
            for info in list_benchmarks().values():
                table.add_row(info.name, info.summary)
            console.print(table)
            return
        if name is None:
            fail("name a benchmark, or use --list", code=2)
        result = run_benchmark(name, parse_options(list(ctx.args)))
    except BenchmarkError as err:
        fail(str(err), code=2)
    print(json.dumps(result, indent=2))
