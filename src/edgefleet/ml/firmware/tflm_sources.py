"""Which vendored TFLite Micro sources a host build compiles: the framework and the ops' kernels.

The sources are the subset of espressif/esp-tflite-micro in `$EDGEFLEET_SHARED/vendor/esp-tflite-micro`
(see its README): the reference kernels only. ESP-NN's optimized kernels are not vendored (their
S3 variants are Xtensa assembly), so what the chip runs for CONV_2D, DEPTHWISE_CONV_2D,
FULLY_CONNECTED, ADD, MUL, pooling and SOFTMAX is not what is built here.
"""

import hashlib
import os
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Final

from edgefleet.ml.firmware.errors import HostBuildError
from edgefleet.ml.firmware.ops import RESOLVER_METHODS

INCLUDE_ROOTS: Final = (".", "third_party/gemmlowp", "third_party/flatbuffers/include", "third_party/ruy")
KERNELS: Final = "tensorflow/lite/micro/kernels"
# What a MicroInterpreter with a MicroMutableOpResolver links (checked with a linker map). It is
# compiled as one unity translation unit, which parses the large flatbuffer schema header once
# (about 6 s of CPU instead of 75 s). The last file defines tensor_utils.h's include guard.
FRAMEWORK_SOURCES: Final = (
    "tensorflow/compiler/mlir/lite/core/api/error_reporter.cc",
    "tensorflow/compiler/mlir/lite/schema/schema_utils.cc",
    "tensorflow/lite/core/api/flatbuffer_conversions.cc",
    "tensorflow/lite/core/c/common.cc",
    "tensorflow/lite/kernels/internal/common.cc",
    "tensorflow/lite/kernels/internal/quantization_util.cc",
    "tensorflow/lite/kernels/internal/tensor_ctypes.cc",
    "tensorflow/lite/kernels/kernel_util.cc",
    "tensorflow/lite/micro/arena_allocator/non_persistent_arena_buffer_allocator.cc",
    "tensorflow/lite/micro/arena_allocator/persistent_arena_buffer_allocator.cc",
    "tensorflow/lite/micro/arena_allocator/single_arena_buffer_allocator.cc",
    "tensorflow/lite/micro/debug_log.cc",
    "tensorflow/lite/micro/flatbuffer_utils.cc",
    "tensorflow/lite/micro/kernels/kernel_util.cc",
    "tensorflow/lite/micro/memory_helpers.cc",
    "tensorflow/lite/micro/memory_planner/greedy_memory_planner.cc",
    "tensorflow/lite/micro/memory_planner/linear_memory_planner.cc",
    "tensorflow/lite/micro/micro_allocation_info.cc",
    "tensorflow/lite/micro/micro_allocator.cc",
    "tensorflow/lite/micro/micro_context.cc",
    "tensorflow/lite/micro/micro_interpreter.cc",
    "tensorflow/lite/micro/micro_interpreter_context.cc",
    "tensorflow/lite/micro/micro_interpreter_graph.cc",
    "tensorflow/lite/micro/micro_log.cc",
    "tensorflow/lite/micro/micro_op_resolver.cc",
    "tensorflow/lite/micro/micro_resource_variable.cc",
    "tensorflow/lite/micro/micro_utils.cc",
    "tensorflow/lite/micro/tflite_bridge/flatbuffer_conversions_bridge.cc",
    "tensorflow/lite/micro/tflite_bridge/micro_error_reporter.cc",
    "tensorflow/lite/kernels/internal/portable_tensor_utils.cc",
)
_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)


def vendor_dir() -> Path:
    """`$EDGEFLEET_SHARED/vendor/esp-tflite-micro`; EDGEFLEET_SHARED defaults to ../shared of the checkout."""
    shared = os.environ.get("EDGEFLEET_SHARED")
    root = Path(shared) if shared else Path(__file__).resolve().parents[4].parent / "shared"
    return root / "vendor" / "esp-tflite-micro"


@cache
def vendor_fingerprint(vendor: Path) -> str:
    """A digest of every vendored file (path and content): any header change rebuilds every object."""
    digest = hashlib.sha256()
    for path in sorted(p for p in vendor.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(vendor)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _registration(op: str, resolver_header: str) -> str:
    """The `Register_XXX` that MicroMutableOpResolver's method for `op` uses by default."""
    method = RESOLVER_METHODS.get(op)
    if method is None:
        raise HostBuildError(f"no TFLite Micro kernel for op {op!r}")
    found = re.search(rf"TfLiteStatus {method}\((.*?)\{{", resolver_header, re.DOTALL)
    name = re.search(r"Register_(\w+)\(\)", found.group(1)) if found else None
    if name is None:
        raise HostBuildError(f"cannot find how MicroMutableOpResolver::{method} registers {op}")
    return name.group(1)


def kernel_sources(ops: Iterable[str], vendor: Path | None = None) -> list[str]:
    """Kernel sources (relative to the vendor dir) for `ops`: the file that defines each op's
    registration, and the `<kernel>.cc`/`<kernel>_common.cc` of every kernel header they include."""
    vendor = vendor or vendor_dir()
    kernels = vendor / KERNELS
    header = (vendor / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text(encoding="utf-8")
    texts = {p.name: p.read_text(encoding="utf-8", errors="replace") for p in sorted(kernels.glob("*.cc"))}
    todo: list[str] = []
    for op in sorted(set(ops)):
        name = _registration(op, header)
        define = re.compile(rf"^TFLMRegistration\*?\s+Register_{name}\(\)\s*\{{", re.MULTILINE)
        owner = next((file for file, text in texts.items() if define.search(text)), None)
        if owner is None:
            raise HostBuildError(f"no kernel source in {kernels} defines Register_{name}() for {op}")
        todo.append(owner)
    chosen: list[str] = []
    in_framework = {Path(p).name for p in FRAMEWORK_SOURCES if p.startswith(KERNELS)}
    while todo:
        file = todo.pop(0)
        if file in chosen or file in in_framework:
            continue
        chosen.append(file)
        for included in _INCLUDE.findall(texts[file]):
            if included.startswith(KERNELS + "/") and included.endswith(".h"):
                stem = Path(included).stem
                todo += [f for f in (f"{stem}.cc", f"{stem}_common.cc") if f in texts]
    return [f"{KERNELS}/{file}" for file in sorted(chosen)]


def translation_units(ops: Iterable[str], vendor: Path) -> list[tuple[str, ...]]:
    """The framework as one unity unit, then one unit per kernel source (kernels share names such
    as `Init`/`Prepare` in anonymous namespaces, so they cannot share a unit)."""
    return [FRAMEWORK_SOURCES, *((k,) for k in kernel_sources(ops, vendor))]
