"""Syntax-check a generated ESP-IDF project against a real ESP-IDF tree, without the Xtensa toolchain.

    python tools/idf_syntax_check.py --idf $IDF_PATH --project build/fw \
        --managed path/to/managed_components [--managed ...] [--kconfig-python .venv-kconfig/bin/python]

What it does, in order:
1. sdkconfig.h: the real Kconfig of the tree (every component's Kconfig and Kconfig.projbuild, the
   managed components' and the project's) run through `kconfgen` (esp-idf-kconfig, the version the
   ESP-IDF release uses: 1.x/2.x for 5.x, 3.x for 6.x) with the project's sdkconfig.defaults.
   Without --kconfig-python it fails: a hand-written sdkconfig.h would check nothing real.
2. Include directories: every `include` directory of every component (IDF's and the managed ones), for
   the project's target only (other targets', Linux ports', tests' and private directories left out),
   passed as -isystem so ESP-IDF's own headers are not held to the project's warning flags.
3. Every .c/.cc of the project's main/ with the host's gcc/g++ -fsyntax-only, -Wall -Wextra -Werror
   (ESP-IDF builds with -Werror=all), as C17 / C++20 with ESP_PLATFORM defined.

Host adjustments (the C library is glibc, not newlib): a few newlib-only headers are declared in a
shim directory, `iovec` is taken from glibc (lwIP defines it only where the libc does not), and the
code is compiled with -m32 so pointers and `long` are 32-bit as on the chip.

What it cannot check: the host's type widths differ from Xtensa newlib's (int32_t is `long` there), so
printf-format warnings are not meaningful here; inline assembly and the linker are not exercised.
Prints a JSON report (files, headers seen per file, ESP-IDF version) and exits 1 on any error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TARGETS = {
    "esp32", "esp32s2", "esp32s3", "esp32c2", "esp32c3", "esp32c5", "esp32c6", "esp32c61", "esp32h2",
    "esp32h21", "esp32h4", "esp32p4", "linux",
}  # fmt: skip
XTENSA_TARGETS = {"esp32", "esp32s2", "esp32s3"}
# The C library is the host's (glibc): public include directories that would replace its headers are
# left out (newlib's/picolibc's platform_include; wpa_supplicant's endian.h, which glibc's
# <sys/types.h> would pick up and newlib's never does).
HOST_SHADOWING = {"wpa_supplicant/port/include", "newlib/platform_include", "esp_libc/platform_include"}


def idf_version(idf: Path) -> str:
    text = (idf / "tools/cmake/version.cmake").read_text()
    parts = [re.search(rf"IDF_VERSION_{k} (\d+)", text) for k in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(m.group(1) if m else "0" for m in parts)


def components(idf: Path, managed: list[Path], project: Path) -> list[Path]:
    found = sorted(p for p in (idf / "components").iterdir() if p.is_dir())
    for root in managed:
        found += sorted(p for p in root.iterdir() if p.is_dir())
    return [*found, project / "main"]  # main: its Kconfig; its headers are found next to the sources


def kconfig_env(idf: Path, comps: list[Path], target: str, build: Path) -> Path:
    kconfigs = [str(c / "Kconfig") for c in comps if (c / "Kconfig").is_file()]
    projbuilds = [str(c / "Kconfig.projbuild") for c in comps if (c / "Kconfig.projbuild").is_file()]
    renames = [str(c / "sdkconfig.rename") for c in comps if (c / "sdkconfig.rename").is_file()]
    renames += [
        str(c / f"sdkconfig.rename.{target}") for c in comps if (c / f"sdkconfig.rename.{target}").is_file()
    ]
    env = {
        "COMPONENT_KCONFIGS": ";".join(kconfigs),
        "COMPONENT_KCONFIGS_PROJBUILD": ";".join(projbuilds),
        "COMPONENT_SDKCONFIG_RENAMES": ";".join(renames),
        "IDF_TARGET": target,
        "IDF_TOOLCHAIN": "gcc",
        "IDF_VERSION": idf_version(idf),
        "IDF_ENV_FPGA": "",
        "IDF_PATH": str(idf),
        "IDF_INIT_VERSION": idf_version(idf),
        "COMPONENT_KCONFIGS_SOURCE_FILE": str(build / "kconfigs.in"),
        "COMPONENT_KCONFIGS_PROJBUILD_SOURCE_FILE": str(build / "kconfigs_projbuild.in"),
        "COMPONENT_KCONFIGS_EXCLUDED": "",
        "COMPONENT_KCONFIGS_PROJBUILD_EXCLUDED": "",
    }
    path = build / "config.env"
    path.write_text(json.dumps(env, indent=1))
    return path


def make_sdkconfig(
    python: str, idf: Path, comps: list[Path], project: Path, *, target: str, build: Path
) -> Path:
    env_file = kconfig_env(idf, comps, target, build)
    run_env = {**os.environ, "IDF_PATH": str(idf), "IDF_TARGET": target}
    subprocess.run(
        [python, str(idf / "tools/kconfig_new/prepare_kconfig_files.py"), "--list-separator=semicolon",
         "--env-file", str(env_file)],
        check=True, env=run_env, stdout=sys.stderr,
    )  # fmt: skip
    header = build / "config/sdkconfig.h"
    header.parent.mkdir(parents=True, exist_ok=True)
    command = [
        python, "-m", "kconfgen", "--list-separator=semicolon", "--kconfig", str(idf / "Kconfig"),
        "--sdkconfig-rename", str(idf / "sdkconfig.rename"), "--config", str(build / "sdkconfig"),
        "--defaults", str(project / "sdkconfig.defaults"), "--env-file", str(env_file),
        "--env", f"IDF_TARGET={target}", "--env", f"IDF_INIT_VERSION={idf_version(idf)}",
        "--output", "header", str(header), "--output", "config", str(build / "sdkconfig"),
    ]  # fmt: skip
    subprocess.run(command, check=True, env=run_env, cwd=build, stdout=sys.stderr)
    return header


_INCLUDE_LIST = re.compile(
    r"(?:set|list)\s*\(\s*(?:APPEND\s+)?(?:\w*includes?\w*|\w*include_dirs\w*|public_include\w*)\b([^)]*)\)"
    r"|INCLUDE_DIRS\b((?:[^)](?!\b(?:PRIV_INCLUDE_DIRS|SRCS|SRC_DIRS|REQUIRES|PRIV_REQUIRES|LDFRAGMENTS|EMBED_FILES"
    r"|EMBED_TXTFILES|KCONFIG|WHOLE_ARCHIVE|EXCLUDE_SRCS)\b))*)",
    re.IGNORECASE,
)


def _cmake_texts(cmake: Path) -> list[tuple[Path, str]]:
    """A CMakeLists.txt and the files it include()s from its own directory, comments removed."""
    text = re.sub(r"#[^\n]*", "", cmake.read_text(errors="replace"))
    out = [(cmake.parent, text)]
    for rel in re.findall(r"include\s*\(\s*\$\{CMAKE_CURRENT_LIST_DIR\}/([^)\s]+)\s*\)", text):
        if (cmake.parent / rel).is_file():
            out += _cmake_texts(cmake.parent / rel)
    return out


def component_include_dirs(comp: Path, target: str) -> list[Path]:
    """The INCLUDE_DIRS a component's CMakeLists.txt names (target, arch and simple set() variables
    resolved; every branch taken: a directory that does not exist is dropped)."""
    cmake = comp / "CMakeLists.txt"
    if not cmake.is_file():
        return []
    arch = "xtensa" if target in XTENSA_TARGETS else "riscv"
    found: list[Path] = []
    for base, text in _cmake_texts(cmake):
        here = [str(base)]
        values = {
            "target": [target, "esp32xx"], "idf_target": [target], "IDF_TARGET": [target], "arch": [arch],
            "kernel_impl": ["FreeRTOS-Kernel"], "CMAKE_CURRENT_SOURCE_DIR": here,
            "CMAKE_CURRENT_LIST_DIR": here, "COMPONENT_DIR": here,
        }  # fmt: skip
        for name, value in re.findall(r"\bset\s*\(\s*(\w+)\s+\"?([\w./${}-]+)\"?\s*\)", text):
            values.setdefault(name, [value])
        for match in _INCLUDE_LIST.finditer(text):
            for token in re.findall(r'"[^"]*"|[^\s"]+', match.group(1) or match.group(2) or ""):
                candidates = [token.strip('"')]
                for _ in range(2):  # a value may name another variable
                    for name, options in values.items():
                        candidates = [c.replace(f"${{{name}}}", o) for c in candidates for o in options]
                for candidate in candidates:
                    if "${" in candidate or not candidate or candidate.startswith("$"):
                        continue
                    path = (base / candidate).resolve()
                    parts = set(Path(candidate).parts)
                    if (
                        path.is_dir()
                        and path not in found
                        and not parts & (TARGETS - {target})
                        and "test" not in parts
                    ):
                        found.append(path)
    for extra in SUBMODULE_INCLUDES.get(comp.name, []):
        if (comp / extra).is_dir() and (comp / extra).resolve() not in found:
            found.append((comp / extra).resolve())
    return found


# Include directories exported by a submodule's own CMake targets (not in the component's CMakeLists):
# Mbed TLS 4 (ESP-IDF 6) takes its crypto headers from TF-PSA-Crypto.
SUBMODULE_INCLUDES = {
    "mbedtls": ["mbedtls/tf-psa-crypto/include", "mbedtls/tf-psa-crypto/drivers/builtin/include"]
}

# Components every ESP-IDF component requires (tools/cmake/build.cmake: __COMPONENT_REQUIRES_COMMON).
COMMON_REQUIRES = ["cxx", "newlib", "esp_libc", "freertos", "esp_hw_support", "heap", "log", "soc", "hal",
                   "esp_rom", "esp_common", "esp_system", "xtensa", "riscv", "esp_stdio"]  # fmt: skip
_REQUIRES = re.compile(
    r"(?:set|list)\s*\(\s*(?:APPEND\s+)?(\w*requires\w*|\w*reqs\w*)\b([^)]*)\)|\bREQUIRES\b((?:[^)](?!\b(?:"
    r"PRIV_REQUIRES|PRIV_INCLUDE_DIRS|INCLUDE_DIRS|SRCS|LDFRAGMENTS|EMBED_FILES|EMBED_TXTFILES|WHOLE_ARCHIVE)\b))*)",
    re.IGNORECASE,
)


def public_requires(comp: Path) -> list[str]:
    """Components a component REQUIRES publicly (their include directories reach its users)."""
    cmake = comp / "CMakeLists.txt"
    if not cmake.is_file():
        return []
    names: list[str] = []
    for _, text in _cmake_texts(cmake):
        for match in _REQUIRES.finditer(text):
            if match.group(1) and "priv" in match.group(1).lower():
                continue
            names += [
                t.strip('"') for t in re.findall(r'"[^"]*"|[^\s"]+', match.group(2) or match.group(3) or "")
            ]
    return [n for n in names if re.fullmatch(r"[\w.-]+", n)]


def include_dirs(comps: list[Path], target: str, roots: list[str]) -> list[Path]:
    """Include directories as the build gives them to `main`: its requirements, the managed
    components, the common ones, and what they REQUIRE publicly, transitively."""
    by_name = {c.name: c for c in comps}
    for c in comps:  # managed components are also known without their namespace (espressif__mqtt)
        by_name.setdefault(c.name.split("__")[-1], c)
    seen: list[str] = []
    queue = [*roots, *COMMON_REQUIRES]
    while queue:
        name = queue.pop(0)
        comp = by_name.get(name)
        if comp is None or comp.name in seen or (comp.name in TARGETS and comp.name != target):  # linux
            continue
        seen.append(comp.name)
        queue += public_requires(comp) + COMMON_REQUIRES
    dirs: list[Path] = []
    for name in seen:
        if name == "main":
            continue
        comp = by_name[name]
        dirs += [
            d for d in component_include_dirs(comp, target)
            if d not in dirs and not any(str(d).endswith("/" + shadow) for shadow in HOST_SHADOWING)
        ]  # fmt: skip
    return dirs


def main_requires(project: Path, idf_major: int, idf_minor: int, managed: list[Path]) -> list[str]:
    """main's PRIV_REQUIRES as its CMakeLists resolves them for this ESP-IDF, plus its managed components."""
    text = (project / "main/CMakeLists.txt").read_text()
    block = re.search(r"PRIV_REQUIRES([^)]*?)(?:\n\s*#|EMBED|WHOLE_ARCHIVE|\))", text, re.S)
    names = re.findall(r"[\w$.{}-]+", block.group(1)) if block else []
    drivers = ["esp_driver_gpio", "esp_driver_i2c"] if (idf_major, idf_minor) > (5, 2) else ["driver"]
    out: list[str] = []
    for name in names:
        if name == "${EF_DRIVERS}":
            out += drivers
        elif name == "${EF_MQTT}":
            out += ["mqtt"] if idf_major < 6 else []
        elif not name.startswith("$"):
            out.append(name)
    return out + [c.name for m in managed for c in m.iterdir() if c.is_dir()]


# newlib declarations ESP-IDF headers use that glibc lacks (the FreeRTOS and Xtensa ports size and
# reclaim newlib's per-task `struct _reent`): declared here, for the host compiler only.
HOST_SHIMS = {
    "sys/reent.h": """#pragma once
struct _reent { int _errno; void *_stdin, *_stdout, *_stderr; };
#ifdef __cplusplus
extern "C" {
#endif
extern struct _reent *_impure_ptr;
void _reclaim_reent(struct _reent *);
#ifdef __cplusplus
}
#endif
""",
    "reent.h": "#pragma once\n#include <sys/reent.h>\n",
    "machine/endian.h": "#pragma once\n#include <endian.h>\n",
}


def write_shims(build: Path, idf: Path) -> Path:
    root = build / "host_shims"
    for name, text in HOST_SHIMS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    for libc in ("newlib", "esp_libc"):  # ESP-IDF's own headers among the left-out libc overrides
        platform = idf / "components" / libc / "platform_include"
        for header in [*platform.glob("esp_*.h"), *platform.glob("net/*.h")]:  # net/if.h: lwIP's ifreq
            (root / header.relative_to(platform)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(header, root / header.relative_to(platform))
    return root


def check(args: argparse.Namespace) -> dict[str, object]:
    idf, project = args.idf.resolve(), args.project.resolve()
    comps = components(idf, [m.resolve() for m in args.managed], project)
    build = Path(tempfile.mkdtemp(prefix="idf-check-"))
    try:
        header = make_sdkconfig(args.kconfig_python, idf, comps, project, target=args.target, build=build)
        major, minor = (int(x) for x in idf_version(idf).split(".")[:2])
        roots = main_requires(project, major, minor, [m.resolve() for m in args.managed])
        incs = [header.parent, *include_dirs(comps, args.target, roots), write_shims(build, idf)]
        arch_macro = "-D__XTENSA__" if args.target in XTENSA_TARGETS else "-D__riscv"
        idf_ver = f'-DIDF_VER="v{idf_version(idf)}"'
        flags = ["-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-DESP_PLATFORM", idf_ver, "-D_GNU_SOURCE",
                 "-Diovec=iovec", arch_macro]  # fmt: skip
        iflags = [x for d in incs for x in ("-isystem", str(d))]
        results = []
        ok = True
        for source in sorted((project / "main").glob("*.c")) + sorted((project / "main").glob("*.cc")):
            cpp = source.suffix == ".cc"
            # -m32: pointers and long are 32-bit as on the chip (esp_cpu.h casts pointers to uint32_t)
            compiler = [args.cxx, "-std=gnu++20", "-m32"] if cpp else [args.cc, "-std=gnu17", "-m32"]
            proc = subprocess.run(
                [*compiler, *flags, "-H", *iflags, str(source)], check=False, capture_output=True, text=True
            )
            headers = {
                line.lstrip(". ").strip() for line in proc.stderr.splitlines() if re.match(r"^\.+ ", line)
            }
            errors = [
                line for line in proc.stderr.splitlines() if not re.match(r"^\.+ ", line) and line.strip()
            ]
            idf_headers = sorted(
                h
                for h in headers
                if h.startswith(str(idf)) or any(h.startswith(str(m.resolve())) for m in args.managed)
            )
            results.append({
                "file": source.name, "ok": proc.returncode == 0, "headers": len(headers),
                "esp_idf_headers": len(idf_headers), "errors": errors[:40], "_idf": idf_headers,
            })  # fmt: skip
            ok = ok and proc.returncode == 0
        return {
            "esp_idf": idf_version(idf), "target": args.target, "ok": ok, "files": len(results),
            "files_ok": sum(r["ok"] for r in results), "include_dirs": len(incs),
            "distinct_esp_idf_headers": len({h for r in results for h in r.pop("_idf")}),
            "results": results,
        }  # fmt: skip
    finally:
        if not args.keep:
            shutil.rmtree(build, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idf", type=Path, default=Path(os.environ.get("IDF_PATH", "")))
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument(
        "--managed", type=Path, action="append", default=[], help="a managed_components directory"
    )
    parser.add_argument("--target", default="esp32s3")
    parser.add_argument("--kconfig-python", default=sys.executable, help="a Python with esp-idf-kconfig")
    parser.add_argument("--cc", default="gcc")
    parser.add_argument("--cxx", default="g++")
    parser.add_argument("--keep", action="store_true", help="keep the build directory (sdkconfig.h)")
    report = check(parser.parse_args())
    sys.stdout.write(json.dumps(report, indent=1) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
