"""Host (x86-64, g++) build of TensorFlow Lite Micro and of harnesses around a generated project.

The firmware's own sources (`inference.cc`, `model_data.cc`, `features.c`, `ef_core.c`, ...) are
compiled for the host and linked with TFLite Micro built from the vendored esp-tflite-micro
sources (`$EDGEFLEET_SHARED/vendor/esp-tflite-micro`, default `../shared` next to the checkout),
with its reference kernels (tflm_sources.py says which): ESP-NN's optimized kernels (Xtensa
assembly on the S3) are what the chip runs and are not built here. Used by the tests
(tests/ml/firmware) and by `edgefleet bench firmware`; it imports no test framework.

API (stable; the camera harness uses the same functions):

    host_build_problem() -> str | None
        Why a host build cannot run here (no g++/gcc, no vendored sources), or None.
    vendor_dir() -> Path                     (from tflm_sources)
        $EDGEFLEET_SHARED/vendor/esp-tflite-micro (default ../shared relative to the checkout).
    tflm_library(ops: Iterable[str], cache_dir: Path | None = None, *, jobs: int = 2,
                 vendor: Path | None = None, opt: str = "-O2") -> TflmBuild
        libtflm.a with the framework and the kernels of `ops` (TFLite builtin names, as in
        model_card.ops / tflite_info.read_ops, e.g. ["CONV_2D", "SOFTMAX"]). Objects are cached
        by content (source + vendored headers + flags + compiler) and the library by its object
        list under cache_dir (default $EDGEFLEET_TFLM_CACHE or ~/.cache/edgefleet/tflm-host), so
        a second call is instant and op sets share the framework's objects.
    TflmBuild: library (Path), include_dirs (tuple[Path, ...]), defines (tuple[str, ...]: the
        -D flags every source using TFLM headers must get), ops, objects (int), build_s (float),
        cached (bool: nothing was compiled), key (str).
    compile_harness(project_dir: Path, sources: Sequence[Path], harness: Path, out: Path, *,
                    tflm: TflmBuild, include_dirs: Sequence[Path] = (), defines: Sequence[str] = (),
                    opt: str = "-O2") -> Path
        Compile `sources` (.c with gcc -std=c99, .cc with g++ -std=c++17) into an archive (the
        linker takes only the objects the harness needs) and the `harness` .cc, link them with
        tflm.library, write the executable `out` and return it. `project_dir/main` is
        searched for "quoted" includes only (-iquote: the project's features.h must not shadow
        <features.h>); the ESP-IDF shims (esp_log.h, esp_timer.h) in HOST_INCLUDE come first and
        host/esp_host.cc (their definitions) is linked in. Sources get ESP-IDF's default warning
        flags (-Wall -Werror=all -Wextra ...), as ESP-IDF compiles components.
    run_harness(binary: Path, args: Sequence[str], *, timeout: float = 300.0,
                wrapper: Sequence[str] = ()) -> list[dict[str, Any]]
        Run it; every stdout line is a JSON object. `wrapper` e.g. ("valgrind", "--tool=callgrind").
    harness_source(name: str) -> Path
        A harness shipped in the package (`host/<name>`), e.g. "harness_vibration.cc".
    project_sources(project_dir: Path, include_dirs: Sequence[Path] = ()) -> list[Path]
        The portable sources of a generated project: main/*.c and main/*.cc whose every include,
        after the preprocessor (#if ESP_PLATFORM ...), is found on the host (the project's own,
        TFLM's, the shims', the C/C++ library's). app_main.cc and the ESP-IDF glue are left out.
    project_ops(project_dir: Path) -> list[str]
        The ops the project's op resolver registers (resolver.AddXxx() in main/*.cc).
    build_vibration_harness(project_dir: Path, out: Path, *, cache_dir: Path | None = None) -> Path
        tflm_library(project_ops) + compile_harness(project_sources, host/harness_vibration.cc).

Errors are HostBuildError (a FirmwareError) with the compiler's output.
"""

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any, Final

from edgefleet.ml.firmware.errors import HostBuildError
from edgefleet.ml.firmware.ops import RESOLVER_METHODS
from edgefleet.ml.firmware.tflm_sources import (
    INCLUDE_ROOTS,
    kernel_sources,
    translation_units,
    vendor_dir,
    vendor_fingerprint,
)

__all__ = [
    "HOST_INCLUDE",
    "HostBuildError",
    "TflmBuild",
    "build_vibration_harness",
    "compile_harness",
    "harness_source",
    "host_build_problem",
    "kernel_sources",
    "library_key",
    "project_ops",
    "project_sources",
    "run_harness",
    "tflm_library",
    "vendor_dir",
]

log = logging.getLogger(__name__)

HOST_DIR: Final = Path(__file__).resolve().parent / "host"
HOST_INCLUDE: Final = HOST_DIR / "include"
HOST_SUPPORT: Final = HOST_DIR / "esp_host.cc"  # defines what the shims in HOST_INCLUDE declare
# As esp-tflite-micro's CMakeLists (minus ESP_NN): static memory, no x86 NEON emulation.
TFLM_DEFINES: Final = ("-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON")
CXX_FLAGS: Final = ("-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics")
C_FLAGS: Final = ("-std=c99",)
# ESP-IDF's default warning flags for every component (tools/cmake/build.cmake): the project's
# sources must pass them. -Werror=all makes -Wall's warnings errors (not #warning: -Wcpp).
PROJECT_WARNINGS: Final = (
    "-Wall", "-Werror=all", "-Wno-error=unused-function", "-Wno-error=unused-variable",
    "-Wno-error=unused-but-set-variable", "-Wno-error=deprecated-declarations", "-Wextra",
    "-Wno-unused-parameter", "-Wno-sign-compare",
)  # fmt: skip
LIBRARY_OPT: Final = "-O2"


@dataclass(frozen=True)
class TflmBuild:
    library: Path
    include_dirs: tuple[Path, ...]
    defines: tuple[str, ...]
    ops: tuple[str, ...]
    objects: int
    build_s: float
    cached: bool
    key: str


def _tool(*names: str) -> str:
    found = next((path for name in names if (path := shutil.which(name))), None)
    if found is None:
        raise HostBuildError(f"none of {', '.join(names)} on PATH")
    return found


def host_build_problem(vendor: Path | None = None) -> str | None:
    """Why the host build cannot run here, or None."""
    vendor = vendor or vendor_dir()
    if not all(shutil.which(tool) for tool in ("g++", "gcc", "ar")):
        return "no host C/C++ toolchain (g++, gcc, ar) on PATH"
    if not (vendor / "tensorflow/lite/micro/micro_interpreter.h").is_file():
        return f"no vendored TFLite Micro sources at {vendor} (set EDGEFLEET_SHARED)"
    return None


def default_cache_dir() -> Path:
    env = os.environ.get("EDGEFLEET_TFLM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "edgefleet" / "tflm-host"


@cache
def _compiler_id(compiler: str) -> str:
    done = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False)
    return f"{compiler}: {done.stdout.splitlines()[0] if done.stdout else done.returncode}"


def _library_flags(vendor: Path, opt: str) -> list[str]:
    return [*CXX_FLAGS, opt, *TFLM_DEFINES, *(f"-I{vendor / d}" for d in INCLUDE_ROOTS)]


def _unit_keys(ops: Iterable[str], vendor: Path, opt: str) -> tuple[list[tuple[str, ...]], list[str], str]:
    """Translation units, the key of each object (compiler, vendored tree, flags, sources) and the
    library's key (its objects)."""
    compiler = _tool("g++")
    flags = _library_flags(vendor, opt)
    units = translation_units(ops, vendor)
    head = [_compiler_id(compiler), vendor_fingerprint(vendor), *flags, "--"]
    keys = [hashlib.sha256("\n".join([*head, *unit]).encode()).hexdigest()[:24] for unit in units]
    return units, keys, hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]


def library_key(ops: Iterable[str], vendor: Path | None = None, opt: str = LIBRARY_OPT) -> str:
    """The cache key of the library for `ops`: the sources list, the flags, the compiler, the vendor tree."""
    return _unit_keys(ops, vendor or vendor_dir(), opt)[2]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder per cache directory at a time (tests and benches may run side by side)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(cmd: Sequence[str], what: str, stdin: str | None = None) -> "subprocess.CompletedProcess[str]":
    """Run a build tool; HostBuildError with its stderr when it fails."""
    done = subprocess.run(list(cmd), input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise HostBuildError(f"{what} failed (exit {done.returncode}):\n{done.stderr[-6000:]}")
    return done


def _parallel(jobs: int, tasks: Sequence[Callable[[], object]]) -> None:
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for future in [pool.submit(task) for task in tasks]:
            future.result()


def _compile_unit(
    compiler: str, flags: Sequence[str], unit: tuple[str, ...], vendor: Path, obj: Path
) -> None:
    tmp = obj.with_suffix(f".{os.getpid()}.tmp")
    if len(unit) == 1:
        _run([compiler, *flags, "-c", str(vendor / unit[0]), "-o", str(tmp)], f"compiling {unit[0]}")
    else:  # a unity unit, fed on stdin
        text = "".join(f'#include "{source}"\n' for source in unit)
        _run([compiler, *flags, "-c", "-x", "c++", "-", "-o", str(tmp)], "compiling the TFLM framework", text)
    tmp.replace(obj)


def tflm_library(
    ops: Iterable[str],
    cache_dir: Path | None = None,
    *,
    jobs: int = 2,
    vendor: Path | None = None,
    opt: str = LIBRARY_OPT,
) -> TflmBuild:
    """libtflm.a with the framework and the reference kernels of `ops` (see the module docstring)."""
    vendor = vendor or vendor_dir()
    if problem := host_build_problem(vendor):
        raise HostBuildError(problem)
    ops = tuple(sorted(set(ops)))
    cache_dir = cache_dir or default_cache_dir()
    units, keys, key = _unit_keys(ops, vendor, opt)
    library = cache_dir / key / "libtflm.a"
    includes = tuple(vendor / d for d in INCLUDE_ROOTS)
    started = time.perf_counter()
    with _locked(cache_dir / ".lock"):
        if library.is_file():
            return TflmBuild(library, includes, TFLM_DEFINES, ops, len(units), 0.0, True, key)
        compiler, flags = _tool("g++"), _library_flags(vendor, opt)
        objects = [cache_dir / "objects" / f"{k}.o" for k in keys]
        objects[0].parent.mkdir(parents=True, exist_ok=True)
        # units[0], the framework, is the longest: it starts first, the kernels share the other worker
        missing = [(u, o) for u, o in zip(units, objects, strict=True) if not o.is_file()]
        _parallel(jobs, [partial(_compile_unit, compiler, flags, u, vendor, o) for u, o in missing])
        library.parent.mkdir(parents=True, exist_ok=True)
        tmp = library.with_suffix(".tmp.a")
        tmp.unlink(missing_ok=True)
        _run([_tool("ar"), "rcs", str(tmp), *map(str, objects)], "ar")
        tmp.replace(library)
        elapsed = time.perf_counter() - started
        manifest = {
            "ops": ops, "units": [list(u) for u in units], "flags": flags, "compiler": _compiler_id(compiler),
            "compiled": len(missing), "build_s": round(elapsed, 2),
        }  # fmt: skip
        (library.parent / "build.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    log.info("built %s (%d units, %d compiled) in %.1f s", library, len(units), len(missing), elapsed)
    return TflmBuild(library, includes, TFLM_DEFINES, ops, len(units), elapsed, not missing, key)


# ------------------------------------------------------------------------------------------ harness
def harness_source(name: str) -> Path:
    """A harness shipped with the package (`host/<name>`)."""
    path = HOST_DIR / name
    if not path.is_file():
        raise HostBuildError(f"no harness {name!r} in {HOST_DIR}")
    return path


def _search_flags(
    project_dir: Path, include_dirs: Sequence[Path], tflm_includes: Sequence[Path]
) -> list[str]:
    return [
        f"-I{HOST_INCLUDE}", *(f"-I{d}" for d in include_dirs), *(f"-I{d}" for d in tflm_includes),
        # quoted includes only: the project's features.h must not shadow the C library's <features.h>
        f"-iquote{project_dir / 'main'}",
    ]  # fmt: skip


def _missing_headers(source: Path, search: Sequence[str]) -> list[str]:
    """Headers `source` includes (after the preprocessor's #if) that the host cannot find."""
    compiler = _tool("gcc") if source.suffix == ".c" else _tool("g++")
    cmd = [compiler, *search, *TFLM_DEFINES, "-MM", "-MG", str(source)]
    names = _run(cmd, f"scanning {source.name}").stdout.replace("\\\n", " ").split(":", 1)[-1].split()
    return [name for name in names if not Path(name).is_absolute()]  # found ones come with their dir


def project_sources(project_dir: Path, include_dirs: Sequence[Path] = ()) -> list[Path]:
    """The generated project's sources that build on the host (module docstring)."""
    main = project_dir / "main"
    sources = sorted([*main.glob("*.c"), *main.glob("*.cc")])
    if not sources:
        raise HostBuildError(f"{main}: no C/C++ sources (is {project_dir} a generated project?)")
    vendor = vendor_dir()
    search = _search_flags(project_dir, include_dirs, [vendor / d for d in INCLUDE_ROOTS])
    with ThreadPoolExecutor(max_workers=2) as pool:
        missing = list(pool.map(lambda source: _missing_headers(source, search), sources))
    for source, headers in zip(sources, missing, strict=True):
        if headers:
            log.debug("%s is left out: the host has no %s", source.name, ", ".join(headers))
    return [source for source, headers in zip(sources, missing, strict=True) if not headers]


def project_ops(project_dir: Path) -> list[str]:
    """TFLite ops the project's op resolver registers (`resolver.AddXxx()` in main/*.cc)."""
    by_method = {method: op for op, method in RESOLVER_METHODS.items()}
    found = {
        by_method[m]
        for source in (project_dir / "main").glob("*.cc")
        for m in re.findall(r"\.(Add\w+)\(\)", source.read_text(encoding="utf-8", errors="replace"))
        if m in by_method
    }
    if not found:
        raise HostBuildError(f"{project_dir}: no op resolver registrations (resolver.AddXxx()) in main/*.cc")
    return sorted(found)


def compile_harness(
    project_dir: Path,
    sources: Sequence[Path],
    harness: Path,
    out: Path,
    *,
    tflm: TflmBuild,
    include_dirs: Sequence[Path] = (),
    defines: Sequence[str] = (),
    opt: str = "-O2",
    jobs: int = 2,
) -> Path:
    """Compile `sources` (into an archive) and `harness`, link them with TFLM into `out` (module doc)."""
    cxx, cc = _tool("g++"), _tool("gcc")
    build = out.parent / f"{out.name}.objects"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    common = [opt, "-g", *PROJECT_WARNINGS, *tflm.defines, *defines,
              *_search_flags(project_dir, include_dirs, tflm.include_dirs)]  # fmt: skip
    compiles: list[tuple[list[str], str, Path]] = []
    for i, source in enumerate([*sources, HOST_SUPPORT, harness]):
        is_c = source.suffix == ".c"
        obj = build / f"{i:02d}_{source.stem}.o"
        cmd = [
            cc if is_c else cxx,
            *(C_FLAGS if is_c else CXX_FLAGS),
            *common,
            "-c",
            str(source),
            "-o",
            str(obj),
        ]
        compiles.append((cmd, f"compiling {source.name}", obj))
    _parallel(jobs, [partial(_run, cmd, what) for cmd, what, _ in compiles])
    project_objects = [obj for _, _, obj in compiles[: len(sources)]]
    archive = build / "libproject.a"
    if project_objects:  # an archive: the linker takes only the objects the harness needs
        _run([_tool("ar"), "rcs", str(archive), *map(str, project_objects)], "ar")
    linked = [str(obj) for _, _, obj in compiles[len(sources) :]] + (
        [str(archive)] if project_objects else []
    )
    _run([cxx, *linked, str(tflm.library), "-lm", "-o", str(out)], f"linking {out.name}")
    return out


def run_harness(
    binary: Path, args: Sequence[str], *, timeout: float = 300.0, wrapper: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Run a harness; every non-empty stdout line is one JSON object."""
    try:
        done = subprocess.run(
            [*wrapper, str(binary), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise HostBuildError(f"{binary.name} {' '.join(args)}: no answer after {timeout} s") from err
    if done.returncode != 0:
        raise HostBuildError(
            f"{binary.name} {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}"
        )
    try:
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    except json.JSONDecodeError as err:
        raise HostBuildError(f"{binary.name} printed a line that is not JSON: {err}") from err


def build_vibration_harness(
    project_dir: Path, out: Path, *, cache_dir: Path | None = None, jobs: int = 2
) -> Path:
    """The vibration harness (host/harness_vibration.cc) around a generated project."""
    tflm = tflm_library(project_ops(project_dir), cache_dir, jobs=jobs)
    harness = harness_source("harness_vibration.cc")
    return compile_harness(project_dir, project_sources(project_dir), harness, out, tflm=tflm, jobs=jobs)
