"""Check a `.tflite` flatbuffer's structure and read the facts a model card claims about it.

A signature proves who signed a model, not that it is sound: a truncated or body-corrupted file
still starts with `TFL3`, and a card may claim `flash_bytes: 1`. Both the registry (before it signs)
and a device (before it loads) walk every table and vector of the flatbuffer here, in bounds, so a
damaged file is refused with a reason instead of reaching the interpreter (a `struct.error`, or
worse, a crash in C++). The schema is tflite-micro's (imported when called).
"""

import math
import struct
from dataclasses import dataclass

from edgefleet.contracts.model_card import ModelCard
from edgefleet.contracts.model_package import PackageError

_DTYPES = {9: "int8", 3: "uint8", 7: "int16", 2: "int32", 0: "float32"}


@dataclass(frozen=True)
class TensorFacts:
    shape: tuple[int, ...]
    dtype: str
    scale: float | None
    zero_point: int | None


@dataclass(frozen=True)
class TfliteFacts:
    size: int
    input: TensorFacts
    output: TensorFacts
    operators: int
    tensors: int


def _tensor(tensor: object) -> TensorFacts:
    quant = tensor.Quantization()  # type: ignore[attr-defined]
    scale = zero_point = None
    if quant is not None and quant.ScaleLength() == 1 and quant.ZeroPointLength() == 1:
        scale, zero_point = float(quant.Scale(0)), int(quant.ZeroPoint(0))
    shape = tuple(int(tensor.Shape(i)) for i in range(tensor.ShapeLength()))  # type: ignore[attr-defined]
    dtype = _DTYPES.get(int(tensor.Type()), f"type{int(tensor.Type())}")  # type: ignore[attr-defined]
    return TensorFacts(shape, dtype, scale, zero_point)


def inspect_tflite(data: bytes) -> TfliteFacts:
    """Walk the whole model in bounds; PackageError saying what is wrong if it is damaged."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    if len(data) < 16 or data[4:8] != b"TFL3":
        raise PackageError("not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        model = schema.Model.GetRootAsModel(bytearray(data), 0)
        if model.SubgraphsLength() < 1:
            raise PackageError("the model has no subgraph")
        for i in range(model.OperatorCodesLength()):
            model.OperatorCodes(i).BuiltinCode()
        for i in range(model.BuffersLength()):
            buffer = model.Buffers(i)
            if buffer.DataLength() and buffer.DataAsNumpy().nbytes != buffer.DataLength():
                raise PackageError(f"buffer {i} is cut short")
        graph = model.Subgraphs(0)
        n_tensors = graph.TensorsLength()
        tensors = [graph.Tensors(i) for i in range(n_tensors)]
        for tensor in tensors:
            _tensor(tensor)
            if not 0 <= tensor.Buffer() < max(1, model.BuffersLength()):
                raise PackageError("a tensor points at a buffer that does not exist")
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            if not 0 <= op.OpcodeIndex() < model.OperatorCodesLength():
                raise PackageError(f"operator {i} has no operator code")
            refs = [op.Inputs(j) for j in range(op.InputsLength())] + [
                op.Outputs(j) for j in range(op.OutputsLength())
            ]
            if any(not -1 <= r < n_tensors for r in refs):
                raise PackageError(f"operator {i} names a tensor that does not exist")
        if graph.InputsLength() < 1 or graph.OutputsLength() < 1:
            raise PackageError("the model has no input or no output")
        ios = [graph.Inputs(0), graph.Outputs(0)]
        if any(not 0 <= r < n_tensors for r in ios):
            raise PackageError("the model's input or output is not one of its tensors")
        return TfliteFacts(
            len(data), _tensor(tensors[ios[0]]), _tensor(tensors[ios[1]]), graph.OperatorsLength(), n_tensors
        )
    except PackageError:
        raise
    except (struct.error, IndexError, ValueError, TypeError) as err:
        raise PackageError(f"the .tflite is truncated or corrupt ({type(err).__name__}: {err})") from err


def card_mismatches(card: ModelCard, facts: TfliteFacts) -> list[str]:
    """What the card claims about the file that the file does not bear out (empty: consistent)."""
    problems = []
    if card.flash_bytes != facts.size:
        problems.append(f"flash_bytes is {card.flash_bytes}; the model file has {facts.size} bytes")
    for name, spec, real in (("input", card.input, facts.input), ("output", card.output, facts.output)):
        if tuple(spec.shape) != real.shape:
            problems.append(f"{name} shape is {list(spec.shape)}; the model's is {list(real.shape)}")
        if spec.dtype != real.dtype:
            problems.append(f"{name} dtype is {spec.dtype}; the model's is {real.dtype}")
        q = spec.quantization
        if q is not None and (
            real.scale is None
            or not math.isclose(q.scale, real.scale, rel_tol=1e-6)
            or q.zero_point != real.zero_point
        ):
            problems.append(f"{name} quantization is {q.scale:g}/{q.zero_point}; the model's differs")
    return problems
