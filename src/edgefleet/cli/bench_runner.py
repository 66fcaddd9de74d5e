"""Find, run and describe the benchmarks in `bench/`.

A benchmark is `bench/<name>.py` (name with `-` for `_`) with a one-line module docstring,
an optional `PACKAGES` tuple whose versions are reported, and
`run(options: Mapping[str, str]) -> dict[str, Any]` returning its figures.
"""

import ast
import importlib.util
import os
import platform
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType
from typing import Any

from edgefleet import __version__

_ALWAYS_REPORTED = ("numpy", "pydantic")


class BenchmarkError(RuntimeError):
    """A benchmark that cannot be found, loaded or run."""


@dataclass(frozen=True)
class BenchmarkInfo:
    name: str
    path: Path
    summary: str


def bench_dir() -> Path:
    """`EDGEFLEET_BENCH_DIR`, else `./bench`, else the source checkout's `bench/`."""
    if env := os.environ.get("EDGEFLEET_BENCH_DIR"):
        return Path(env)
    here = Path.cwd() / "bench"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[3] / "bench"


def list_benchmarks(directory: Path | None = None) -> dict[str, BenchmarkInfo]:
    directory = directory or bench_dir()
    if not directory.is_dir():
        raise BenchmarkError(f"no benchmark directory at {directory} (set EDGEFLEET_BENCH_DIR)")
    found = {}
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        name = path.stem.replace("_", "-")
        found[name] = BenchmarkInfo(name, path, doc.strip().splitlines()[0] if doc.strip() else "")
    return found


def _load(info: BenchmarkInfo) -> ModuleType:
    # Benchmarks share helpers as sibling modules (`bench/_*.py`), imported by plain name.
    if str(info.path.parent) not in sys.path:
        sys.path.insert(0, str(info.path.parent))
    spec = importlib.util.spec_from_file_location(f"edgefleet_bench_{info.path.stem}", info.path)
    if spec is None or spec.loader is None:
        raise BenchmarkError(f"cannot load {info.path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise BenchmarkError(f"{info.path} has no run(options) function")
    return module


def _package_versions(names: tuple[str, ...]) -> dict[str, str]:
    versions = {"edgefleet": __version__, "python": platform.python_version()}
    for name in dict.fromkeys((*_ALWAYS_REPORTED, *names)):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    memory_gib = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gib = round(int(line.split()[1]) / 1024**2, 1)
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "platform": platform.platform(),
    }


def parse_options(args: list[str]) -> dict[str, str]:
    """`--db URL --quick` -> {"db": "URL", "quick": "true"}."""
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise BenchmarkError(f"unexpected benchmark argument {arg!r}; use --name value")
        key, _, value = arg[2:].partition("=")
        if not value:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value = args[i + 1]
                i += 1
            else:
                value = "true"
        options[key.replace("-", "_")] = value
        i += 1
    return options


def run_benchmark(name: str, options: Mapping[str, str]) -> dict[str, Any]:
    """Run one benchmark; its figures at the top level, then options, machine and versions."""
    benchmarks = list_benchmarks()
    if name not in benchmarks:
        raise BenchmarkError(f"no benchmark {name!r}; available: {', '.join(benchmarks) or 'none'}")
    module = _load(benchmarks[name])
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    figures = module.run(options)
    return {
        "benchmark": name,
        **figures,
        "options": dict(options),
        "started": started.isoformat(),
        "elapsed_s": round(time.perf_counter() - t0, 3),
        "machine": machine_info(),
        "versions": _package_versions(tuple(getattr(module, "PACKAGES", ()))),
    }
