"""Running exported models: tflite-micro (the firmware's kernels, the truth) and LiteRT.

Also measures the tensor arena by allocating the model in the tflite-micro interpreter.
"""

import logging
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edgefleet.ml.errors import ExportError

log = logging.getLogger(__name__)
_EVAL_ARENA = 256 * 1024


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: str
    scale: float | None
    zero_point: int | None


def _quant(details: dict[str, Any]) -> tuple[float | None, int | None]:
    params = details.get("quantization_parameters", {})
    scales = params.get("scales", [])
    if len(scales) == 1:
        return float(scales[0]), int(params["zero_points"][0])
    return None, None


class LiteRtModel:
    """LiteRT (ai_edge_litert) interpreter, batched."""

    def __init__(self, model: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        # The builtin kernels without the XNNPACK delegate: XNNPACK rounds int8 differently
        # (up to 3 steps from TFLM on our autoencoders), the builtin kernels within one step.
        self._interpreter = Interpreter(
            model_content=model,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        self._interpreter.allocate_tensors()
        self._batch = 1

    def info(self) -> tuple[TensorInfo, TensorInfo]:
        i = self._interpreter.get_input_details()[0]
        o = self._interpreter.get_output_details()[0]
        return (
            TensorInfo(tuple(int(v) for v in i["shape"][1:]), np.dtype(i["dtype"]).name, *_quant(i)),
            TensorInfo(tuple(int(v) for v in o["shape"][1:]), np.dtype(o["dtype"]).name, *_quant(o)),
        )

    def ops(self) -> list[str]:
        return sorted({str(op["op_name"]) for op in self._interpreter._get_ops_details()})

    def run(self, x: NDArray[Any]) -> NDArray[Any]:
        """x [batch, ...] in the input dtype -> outputs [batch, ...]."""
        it = self._interpreter
        index = it.get_input_details()[0]["index"]
        if x.shape[0] != self._batch:
            it.resize_tensor_input(index, [x.shape[0], *x.shape[1:]])
            it.allocate_tensors()
            self._batch = x.shape[0]
        it.set_tensor(index, x)
        it.invoke()
        return np.array(it.get_tensor(it.get_output_details()[0]["index"]))


def quant_params(lite: "LiteRtModel") -> tuple[tuple[float, int], tuple[float, int]]:
    """((input scale, zero point), (output scale, zero point)) of an int8 model."""
    i, o = lite.info()
    if i.scale is None or i.zero_point is None or o.scale is None or o.zero_point is None:
        raise ExportError("the int8 model lacks per-tensor quantization on its input or output")
    return (i.scale, i.zero_point), (o.scale, o.zero_point)


class TflmModel:
    """The tflite-micro Python interpreter (the TFLM kernels), one row at a time."""

    def __init__(self, model: bytes, arena_size: int = _EVAL_ARENA) -> None:
        from tflite_micro.python.tflite_micro import runtime

        try:
            self._interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
        except RuntimeError as err:
            raise ExportError(f"tflite-micro cannot allocate the model in {arena_size} bytes: {err}") from err

    def run(self, x: NDArray[Any]) -> NDArray[Any]:
        out = []
        for row in x:
            self._interpreter.set_input(row[None], 0)
            self._interpreter.invoke()
            out.append(np.array(self._interpreter.get_output(0))[0])
        return np.stack(out)


_PROBE = """
import sys
from tflite_micro.python.tflite_micro import runtime
model = open(sys.argv[1], "rb").read()
it = runtime.Interpreter.from_bytes(model, arena_size=int(sys.argv[2]))
it.invoke()
sys.stdout.flush()
if len(sys.argv) > 3:
    it.print_allocations()
"""


def _probe(path: Path, arena: int, report: bool = False) -> tuple[bool, str]:
    # A too-small arena can crash the interpreter (SIGSEGV), so each probe runs in its own process.
    args = [sys.executable, "-c", _PROBE, str(path), str(arena)] + (["report"] if report else [])
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    return done.returncode == 0, done.stdout + done.stderr


def measure_arena(model: bytes, upper: int = 1 << 20) -> int:
    """Smallest arena (bytes, multiple of 16) in which tflite-micro allocates and invokes the model.

    Starts from the RecordingMicroAllocator's report, then verifies it (and searches upwards if the
    reported total does not suffice, downwards in 16-byte steps by bisection if it is generous).
    Measured on this host (64-bit pointers); a 32-bit MCU needs slightly less.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model)
        ok, text = _probe(path, upper, report=True)
        if not ok:
            raise ExportError(
                f"tflite-micro cannot run the model even with a {upper}-byte arena: {text[-500:]}"
            )
        match = re.search(r"Arena allocation total (\d+) bytes", text)
        hi = int(match.group(1)) if match else upper
        while not _probe(path, hi)[0]:
            hi *= 2
            if hi > upper:
                raise ExportError("arena search exceeded the upper bound")
        lo = 0  # largest known failing size
        step_lo = max(16, hi - 1024)
        if not _probe(path, step_lo)[0]:
            lo = step_lo
        while hi - lo > 16:
            mid = (lo + hi) // 2 // 16 * 16
            if mid <= lo:
                break
            if _probe(path, mid)[0]:
                hi = mid
            else:
                lo = mid
        log.info("tflite-micro arena: %d bytes", hi)
        return hi
